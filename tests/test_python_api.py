"""dlzoo used as a library: the documented Python calls, and what they say when called wrongly."""

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from conftest import ROOT, assert_user_error
from dlzoo.config import RecipeConfig
from dlzoo.engine.runtime import pick_device
from dlzoo.errors import UserError
from dlzoo.models import create, model_entry, register_model
from dlzoo.models.registry import _MODELS
from dlzoo.recipes import get_recipe
from dlzoo.runs import build_config, load_for_inference, open_run
from dlzoo.tasks.base import Task


def test_subpackages_are_reached_from_the_package_alone():
    """docs/reading.md writes `import dlzoo` then `dlzoo.reader.load_reader(...)`: a fresh interpreter finds it,
    and `import dlzoo` stays cheap (torch is loaded on first use, not at import)."""
    code = ("import sys, dlzoo; assert 'torch' not in sys.modules; assert 'reader' in dir(dlzoo); "
            "print(dlzoo.reader.load_reader.__name__, dlzoo.runs.open_run.__name__)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["load_reader", "open_run"]


@pytest.mark.parametrize("arguments", [{"num_classes": 0}, {"num_classes": -1}, {"in_channels": 0},
                                       {"num_classes": "10"}, {"num_classes": 2.5}, {"in_channels": True}])
def test_create_refuses_classes_and_channels_that_make_no_model(arguments):
    """Torch built a 0-class LeNet silently and failed on a negative or string size deep inside the factory."""
    key = next(iter(arguments))
    with pytest.raises(UserError, match=f"model 'lenet': {key} must be an integer >= 1"):
        create("lenet", **arguments)
    assert create("lenet", num_classes=np.int64(3), in_channels=1)(torch.rand(1, 1, 28, 28)).shape == (1, 3)


def test_register_model_refuses_what_would_break_later():
    with pytest.raises(ValueError, match="'resnet18' is already registered"):  # it replaced the built-in silently
        @register_model("resnet18")
        def mine(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
            return nn.Linear(in_channels, num_classes)
    assert model_entry("resnet18").factory.__module__ == "dlzoo.models.resnet"
    with pytest.raises(TypeError, match=r"@register_model\(\"my-net\"\)"):  # bare: it registered nothing
        @register_model
        def bare(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
            return nn.Linear(in_channels, num_classes)
    with pytest.raises(TypeError, match="must take num_classes and in_channels"):
        @register_model("no-sizes")
        def no_sizes(width: int = 8) -> nn.Module:
            return nn.Linear(width, width)
    assert "no-sizes" not in _MODELS


def test_a_model_defined_again_replaces_itself():
    """A notebook cell run twice defines the same function again: that is no clash."""
    try:
        for hidden in (4, 8):
            @register_model("test-api-mlp")
            def test_api_mlp(num_classes: int = 10, in_channels: int = 1, hidden: int = hidden) -> nn.Module:
                """A test's MLP."""
                return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * 28 * 28, hidden), nn.ReLU(),
                                     nn.Linear(hidden, num_classes))
        assert create("test-api-mlp")[1].out_features == 8
    finally:
        _MODELS.pop("test-api-mlp", None)


def test_overrides_given_as_one_string_are_refused_by_what_they_should_be():
    """A string was read one character at a time: "expected KEY=VALUE, got 't'"."""
    recipe = get_recipe("digits")
    with pytest.raises(TypeError, match=r"list of KEY=VALUE strings, e.g. \['trainer.epochs=2'\]"):
        build_config(recipe, overrides="trainer.epochs=2")
    assert build_config(recipe, overrides=("trainer.epochs=2",)).trainer.epochs == 2



@pytest.mark.parametrize(("call", "says"), [
    (lambda dlzoo, out: dlzoo.train("digits", {"trainer.epochs": 1}, out=out),
     r"each override is one KEY=VALUE string, e\.g\. 'trainer\.epochs=2', a dict's as \*\(f'\{k\}=\{v\}'"),
    (lambda dlzoo, out: dlzoo.train("digits", ["trainer.epochs=1"], out=out), "not list"),
    (lambda dlzoo, out: dlzoo.train("digits", "trainer.epochs=1", 2, out=out), "not int 2"),
    (lambda dlzoo, out: dlzoo.train(Path("digits"), out=out), "recipe is a recipe's name, e.g. 'digits'"),
    (lambda dlzoo, out: dlzoo.train("digits", "trainer.epochs=1", out=5), r"out= is a path \(str or pathlib"),
    (lambda dlzoo, out: dlzoo.train("digits", config={"trainer": {"epochs": 1}}, out=out), "config= is a path"),
    (lambda dlzoo, out: dlzoo.resume(None), "run_dir= is a path"),
    (lambda dlzoo, out: dlzoo.load(None), "run_dir= is a path"),
    (lambda dlzoo, out: dlzoo.load(dlzoo.TrainedRun(out, {"metrics": {}})), r"pass the TrainedRun's \.run_dir$"),
], ids=["dict", "list", "int", "path-recipe", "int-out", "dict-config", "resume-none", "load-none", "load-run"])
def test_python_arguments_of_the_wrong_type_are_a_type_error_that_says_what_to_pass(call, says, tmp_path,
                                                                                   monkeypatch):
    """A dict of overrides failed on str.partition, a Path recipe as "'PosixPath' object is not iterable", out=5
    trained into ./5 and config={...} looked for a file named after the dict."""
    import dlzoo

    monkeypatch.chdir(tmp_path)
    with pytest.raises(TypeError, match=says):
        call(dlzoo, tmp_path / "run")
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_predict_takes_files_arrays_and_pil_images_alike(digits_run, digit_pictures):
    """A picture already in memory is predicted as its file is; records stay JSON, naming files only."""
    from PIL import Image

    from dlzoo.vision.io import read_image

    task = load_for_inference(open_run(digits_run), device="cpu")
    picture = next(iter(digit_pictures.values()))
    with pytest.raises(TypeError, match="predict takes a list of inputs"):  # was "image not found: /"
        task.predict(str(picture))
    with pytest.raises(TypeError, match=r"predict\(\[ndarray\]\), not one alone"):  # its rows read as pictures
        task.predict(read_image(picture))
    with pytest.raises(TypeError, match="predict takes file paths, numpy.ndarray, PIL.Image, not int"):
        task.predict([3])
    assert task.predict([]) == []  # a glob that matched nothing: no records (was numpy's "need at least one array")
    with Image.open(picture) as opened:
        from_file, from_array, from_pil = task.predict([Path(picture), read_image(picture), opened])
    assert from_file["path"] == str(picture) and from_array["path"] is None and from_pil["path"] is None
    assert from_file["top"] == from_array["top"] == from_pil["top"]
    assert json.loads(json.dumps([from_file, from_array])) == [from_file, from_array]
    # how many likely classes a record lists: every class at most, none is refused (was an IndexError from topk)
    assert [len(record["top"]) for record in task.predict([picture, picture], top=12)] == [10, 10]
    for top in (0, -1, 2.5):
        with pytest.raises(UserError, match="top= is how many of the most likely classes"):
            task.predict([picture], top=top)


def test_pictures_are_predicted_a_batch_at_a_time_as_all_at_once(digits_run, digit_pictures, monkeypatch):
    from dlzoo.tasks import image_classification

    task = load_for_inference(open_run(digits_run), device="cpu")
    pictures = list(digit_pictures.values())[:5]
    whole = task.predict(pictures)
    events, load_picture = [], image_classification.load_picture
    monkeypatch.setattr(image_classification, "load_picture",
                        lambda item: events.append("decode") or load_picture(item))
    monkeypatch.setattr(task, "logits", lambda images: events.append(f"score {len(images)}")
                        or type(task).logits(task, images))
    monkeypatch.setattr(task.config.data, "eval_batch_size", 2)
    assert task.predict(pictures) == whole
    # each batch is decoded when its turn comes, not every picture before the first is scored
    assert events == ["decode", "decode", "score 2", "decode", "decode", "score 2", "decode", "score 1"]



def test_evaluating_a_loaded_run_says_it_has_no_data_and_how_to_evaluate(digits_run):
    import dlzoo

    task = dlzoo.load(digits_run, device="cpu")
    with pytest.raises(AttributeError, match=r"rebuilds a run from its checkpoint alone.*`dlzoo eval RUN`"):
        task.evaluate("test")  # was "'ImageClassification' object has no attribute 'test_x'"
    assert not hasattr(task, "test_x") and task.predict([np.zeros((28, 28), np.uint8)])[0]["label"]
    with pytest.raises(AttributeError, match="'ImageClassification' object has no attribute 'test_x'"):
        assert type(task)(task.config).test_x is None  # a task being set up is told as Python tells it


@pytest.mark.parametrize("device", ["gpu", "CPU", "tpu:0"])
def test_an_unknown_device_is_one_clear_error(device):
    with pytest.raises(UserError, match=f"unknown device '{device}': use auto, cpu, cuda or mps"):
        pick_device(device)
    assert pick_device("cpu").type == "cpu"


def test_a_run_does_not_inherit_an_earlier_runs_process_settings():
    """Threads and determinism are torch's process-wide settings: a second run from Python without
    trainer.threads kept the first one's thread count (its banner said so). A run puts them back as it ends."""
    from dlzoo.config import TrainerConfig
    from dlzoo.engine.runtime import Runtime

    threads = torch.get_num_threads()
    first = Runtime.create(TrainerConfig(device="cpu", threads=threads + 1, deterministic=True))
    try:
        assert torch.get_num_threads() == threads + 1 and torch.are_deterministic_algorithms_enabled()
    finally:
        first.shutdown()
    assert torch.get_num_threads() == threads and not torch.are_deterministic_algorithms_enabled()
    with pytest.raises(UserError, match="trainer.precision=fp16 needs a GPU"):  # refused: set nothing first
        Runtime.create(TrainerConfig(device="cpu", threads=threads + 1, deterministic=True, precision="fp16"))
    assert torch.get_num_threads() == threads and not torch.are_deterministic_algorithms_enabled()


def test_a_gpu_runs_tf32_and_autotuner_do_not_outlive_it(monkeypatch):
    """A CUDA run without trainer.deterministic turns on TF32 and cuDNN's autotuner for the whole process: a later
    deterministic run from the same notebook (and the notebook's own matmuls) kept them."""
    from dlzoo.config import TrainerConfig
    from dlzoo.engine import runtime as runtime_module

    monkeypatch.setattr(runtime_module, "pick_device", lambda requested: torch.device("cuda", 0))  # its flags only
    flags = lambda: (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32)  # noqa: E731
    suites = flags()
    torch.backends.cudnn.benchmark = torch.backends.cuda.matmul.allow_tf32 = False  # torch's defaults
    try:
        run = runtime_module.Runtime.create(TrainerConfig(device="cuda", precision="fp32"), init_process_group=False)
        assert flags() == (True, True)
        run.shutdown()
        assert flags() == (False, False)
    finally:
        torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32 = suites



def test_drawing_a_runs_curves_leaves_a_notebooks_matplotlib_alone(digits_run, tmp_path):
    """Every run draws curves.png at its end: `matplotlib.use("Agg")` there switched the backend of the whole
    process, so a notebook that trained a run from Python showed no more plots inline."""
    import matplotlib
    import matplotlib.pyplot as plt

    from dlzoo.engine.reporting import METRICS, plot_curves

    (tmp_path / METRICS).write_bytes((digits_run / METRICS).read_bytes())
    before = matplotlib.get_backend()
    matplotlib.use("svg")  # stands in for a notebook's inline backend, which this process may not have
    try:
        mine = plt.figure()
        assert plot_curves(tmp_path).stat().st_size > 0
        assert matplotlib.get_backend() == "svg" and plt.get_fignums() == [mine.number]
    finally:
        plt.close("all")
        matplotlib.use(before)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_numbered_cuda_device_without_cuda_is_one_clear_error(digits_run):
    with pytest.raises(UserError, match="no CUDA device"):
        pick_device("cuda:1")
    import dlzoo

    with pytest.raises(UserError, match=r"^device=cuda, but this machine has no CUDA device; use device=auto or cpu"):
        dlzoo.load(digits_run, device="cuda")  # said trainer.device=cuda, which load does not take


def test_a_task_of_ones_own_that_forgot_its_runtime_is_told_so():
    class Forgetful(Task):
        def setup(self, runtime):
            self.models = self.build_models()

        def build_models(self):
            return {"net": nn.Linear(2, 1)}

        def train_loader(self):
            return self.training_batches(torch.rand(8, 2))

        def train_step(self, batch, ctx):
            return {"loss": ctx.models["net"](batch[0]).mean()}

        def evaluate(self, split):
            return {}

    task = Forgetful(RecipeConfig(recipe="forgetful"))
    task.setup(None)
    with pytest.raises(RuntimeError, match=r"setup\(runtime\) must set self.runtime = runtime"):
        task.train_loader()


def test_read_digits_given_what_is_no_model_says_what_a_model_is():
    """Its arguments in `dlzoo read RUN IMAGE`'s order, or the TrainedRun from dlzoo.train, failed as
    "'ndarray' object has no attribute 'read'": nothing said which argument was wrong."""
    import dlzoo

    picture = np.zeros((28, 28), np.uint8)
    with pytest.raises(TypeError, match=r"model is a run directory.*not ndarray \(the image comes first\)"):
        dlzoo.read_digits("runs/digits", picture)
    with pytest.raises(TypeError, match=r"not TrainedRun \(pass its \.run_dir\)"):
        dlzoo.read_digits(picture, dlzoo.TrainedRun(Path("runs/digits"), {}))


def test_read_digits_arrays_of_other_types_read_as_their_uint8_twin():
    """An int64 array of 0-255 (numpy's default integer) read as a black page, floats of 0-255 as a white one:
    both silently gave ""."""
    from dlzoo.vision.io import as_picture as _as_picture

    picture = np.random.default_rng(0).integers(0, 256, (30, 40), dtype=np.uint8)
    assert np.array_equal(_as_picture(picture.astype(np.int64)), picture)
    assert np.array_equal(_as_picture(picture.astype(np.float32) / 255), picture)
    assert np.array_equal(_as_picture(picture.astype(np.uint16) * 257), picture)  # a 16-bit picture, scaled
    with pytest.raises(UserError, match=r"floats holds values in \[0, 1\], this one up to 255"):
        _as_picture(picture.astype(np.float32))
    with pytest.raises(UserError, match="int32 integers holds values in 0-255, this one -1-300"):
        _as_picture(np.array([[-1, 300], [0, 0]], np.int32))
    with pytest.raises(UserError, match="integers, floats or booleans, not complex128"):  # read as its real part
        _as_picture(picture + 0j)


def test_train_resume_and_load_from_python(tmp_path, digit_pictures, capsys, monkeypatch):
    """`dlzoo.train`/`resume`/`load`: the command line's paths (`~` expanded as a shell would: it made a folder
    named `~`), with the run and its summary returned, mistakes raised as UserError rather than printed, and
    prediction from the run directory alone."""
    import dlzoo

    monkeypatch.setenv("HOME", str(tmp_path))
    random.seed(11), np.random.seed(12), torch.manual_seed(13)
    expected = random.random(), np.random.rand(), torch.rand(1)
    random.seed(11), np.random.seed(12), torch.manual_seed(13)
    run = dlzoo.train("digits", "data.limit=600", "trainer.epochs=1", "trainer.device=cpu", "trainer.threads=1",
                      out="~/run")
    # training reseeds the global generators from trainer.seed, and puts the caller's states back when it ends
    assert (random.random(), np.random.rand(), torch.rand(1)) == expected
    assert run.run_dir == tmp_path / "run" and not Path("~").exists()
    assert run.summary == json.loads((tmp_path / "run" / "summary.json").read_text())
    assert "trained 1 epoch in" in capsys.readouterr().out  # its progress printed as at the command line
    again = dlzoo.resume("~/run")  # finished: nothing to continue, its summary as it was
    assert again.summary == run.summary
    model = dlzoo.load("~/run/checkpoints/epoch-0001", device="cpu")
    picture = next(iter(digit_pictures.values()))
    record = model.predict([picture])[0]
    assert record["label"] in model.meta["classes"] and json.dumps(record)
    with pytest.raises(UserError, match="unknown recipe 'nope'"):
        dlzoo.train("nope")
    with pytest.raises(UserError, match="already holds a run"):
        dlzoo.train("digits", out=tmp_path / "run")
    with pytest.raises(UserError, match="out= needs a path, got an empty one"):  # trained into runs/ instead
        dlzoo.train("digits", out="")


PLUGIN = '''
from torch import nn

from dlzoo.models import register_model


@register_model("plugin-net")
def plugin_net(num_classes: int = 10, in_channels: int = 1, width: int = 8) -> nn.Module:
    """A model of a user's own, from a file the command line imports."""
    return nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(width, num_classes))
'''


def test_a_model_registered_in_a_plugin_trains_and_predicts_from_the_command_line(cli, tmp_path, monkeypatch,
                                                                                   digit_pictures):
    plugin = tmp_path / "my_models.py"
    plugin.write_text(PLUGIN)
    run = tmp_path / "run"
    try:
        assert_user_error(cli("train", "digits", "model.name=plugin-net"), "unknown model 'plugin-net'",
                          "name the file or module that registers it in DLZOO_PLUGINS")
        monkeypatch.setenv("DLZOO_PLUGINS", f"{plugin}, ")
        trained = cli("train", "digits", "model.name=plugin-net", "model.args.width=4", "data.limit=300",
                      "trainer.epochs=1", "trainer.device=cpu", "trainer.threads=1", "--out", run)
        assert trained.code == 0, trained.err
        assert cli("predict", run, next(iter(digit_pictures.values())), "--device", "cpu").code == 0
        assert "plugin-net" in cli("models").out
        monkeypatch.setenv("DLZOO_PLUGINS", "no_such_plugin_module")
        assert_user_error(cli("models"), "DLZOO_PLUGINS names no_such_plugin_module, which cannot be imported")
        monkeypatch.setenv("DLZOO_PLUGINS", str(tmp_path / "missing.py"))
        assert_user_error(cli("models"), "missing.py, which is not a file")
    finally:
        _MODELS.pop("plugin-net", None)


def test_a_plugin_file_imported_also_under_its_own_name_registers_once(tmp_path, monkeypatch):
    """`import my_models` in a script, then the command line importing the same file for DLZOO_PLUGINS: the same
    function, not a clash with another model."""
    import importlib

    from dlzoo.plugins import import_plugins

    (tmp_path / "my_models_twice.py").write_text(PLUGIN.replace("plugin-net", "plugin-net-twice"))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        importlib.import_module("my_models_twice")
        import_plugins({"DLZOO_PLUGINS": str(tmp_path / "my_models_twice.py")})
        assert model_entry("plugin-net-twice").factory.__module__ == "dlzoo_plugin_my_models_twice"
    finally:
        _MODELS.pop("plugin-net-twice", None)


@pytest.mark.parametrize("named", ["../models.txt", ".models", "models.txt"])
def test_a_plugin_named_as_neither_a_python_file_nor_a_module_is_refused_in_a_line(cli, tmp_path, monkeypatch,
                                                                                  named):
    """`../models.txt` was a TypeError traceback (import_module read its leading dots as a relative import);
    `models.txt`, a file here, was said to be a missing module `models`."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models.txt").write_text(PLUGIN)
    monkeypatch.setenv("DLZOO_PLUGINS", named)
    said = "cannot be imported" if named == "models.txt" else "neither a Python file (.py) nor a module name"
    assert_user_error(cli("models"), f"DLZOO_PLUGINS names {named}, which", said)
    if named == "models.txt":
        assert_user_error(cli("models"), "(the file models.txt here is not a .py file)")
