import pytest

from dlzoo.config import from_dict, parse_overrides, set_key, validate
from dlzoo.errors import UserError
from dlzoo.recipes import get_recipe
from dlzoo.runs import build_config


def digits():
    return get_recipe("digits")


def test_overrides_are_converted_to_the_field_type():
    config = build_config(digits(), overrides=["trainer.epochs=3", "optim.lr=1e-3", "trainer.deterministic=yes",
                                               "data.limit=none", "model.args.width=24", "trainer.grad_clip=1"])
    assert config.trainer.epochs == 3
    assert config.optim.lr == pytest.approx(1e-3)
    assert config.trainer.deterministic is True
    assert config.data.limit is None
    assert config.model.args["width"] == 24
    assert config.trainer.grad_clip == 1.0



def test_a_config_file_merges_a_models_args_as_the_command_line_does(tmp_path):
    fashion = get_recipe("fashion")
    assert fashion.config().model.args == {"width": 16, "depth": 1}  # the defaults this test builds on
    mine = tmp_path / "mine.yaml"
    mine.write_text("model: {args: {width: 32}}\n")
    from_file = build_config(fashion, str(mine)).model.args
    assert from_file == build_config(fashion, overrides=["model.args.width=32"]).model.args == {"width": 32, "depth": 1}
    # A file that names another model starts from that model's own defaults, not from the old model's options.
    assert from_dict(type(fashion.config()), {"model": {"name": "other", "args": {"channels": 8}}},
                     base=fashion.config(), merge_mappings=True).model.args == {"channels": 8}
    mine.write_text("model: {name: lenet}\n")
    assert build_config(fashion, str(mine)).model.args == {}
    # A saved run's config is complete: its mapping replaces the defaults', so a run rebuilds the model it trained.
    saved = from_dict(type(fashion.config()), {"model": {"args": {"width": 32}}}, base=fashion.config())
    assert saved.model.args == {"width": 32}


def test_another_model_named_on_the_command_line_starts_from_no_args():
    fashion = get_recipe("fashion")
    assert build_config(fashion, overrides=["model.name=lenet"]).model.args == {}
    for order in (["model.args.dropout=0.3", "model.name=alexnet"], ["model.name=alexnet", "model.args.dropout=0.3"]):
        assert build_config(fashion, overrides=order).model.args == {"dropout": 0.3}
    # Its own name again is no other model: the recipe's args stay.
    same = fashion.config().model.name
    assert build_config(fashion, overrides=[f"model.name={same}"]).model.args == {"width": 16, "depth": 1}


@pytest.mark.parametrize(("recipe", "override", "message"), [
    # a model's arguments, against its factory's signature and types
    ("nin", "model.args.final_rel=false", "unexpected keyword argument 'final_rel' (model.args are"),
    ("fashion", "model.args.num_classes=5", "model.args.num_classes: set by the data"),
    ("digit-lines", "model.args.height=40", "model.args.height: set by data.height"),
    ("digit-lines", "data.style.close_gap=[1,2,3]", "data.style.close_gap is a range [low, high]"),
    ("digit-lines", "data.style.touching=2", "data.style.touching must be a chance in [0, 1]"),
    ("fashion", "data.augment.degrees=-5", "data.augment.degrees must be >= 0"),
    ("fashion", "trainer.log_every_s=-1", "trainer.log_every_s must be >= 0 seconds"),
    ("cgan-digits", "gan.latent_dim=0", "gan.latent_dim must be >= 1"),
    ("cgan-digits", "critic.args.depth=3", "model 'cgan-critic': got an unexpected keyword argument 'depth' (critic"),
    ("fashion", "model.args.width=abc", "model.args.width must be an integer"),
    # a model of another kind than the recipe trains
    ("fashion", "model.name=vae-conv", "model.name=vae-conv is a vae model; fashion trains a classifier: alexnet"),
    ("fashion", "model.name=line-crnn", "is a line-recognizer model"),
    ("cgan-digits", "critic.name=cgan-generator", "cgan-digits trains a gan-critic: cgan-critic"),
    # numbers torch and numpy cannot take
    ("fashion", "trainer.seed=99999999999999999999999", "at most 19 digits"),
    ("fashion", "trainer.seed=-1", "trainer.seed must be in [0, 2^32)"),
    # each task's own values (`Task.check_config`), so that `dlzoo show` refuses what `dlzoo train` would
    ("fashion", "label_smoothing=5", "label_smoothing must be in [0, 1)"),
    ("googlenet", "aux_weight=-0.3", "aux_weight must be >= 0"),
    ("fashion", "tta_shift=-3", "tta_shift must be >= 0"),
    ("cgan-digits", "gan.n_critic=0", "gan.n_critic must be >= 1"),
    ("vae-digits", "iw_samples=0", "iw_samples must be >= 1"),
    ("housing", "data.folds=1", "data.folds must be between 2"),
    ("digit-lines", "data.height=12", "data.height must be a multiple of 8"),
])
def test_config_mistakes_are_refused_before_any_data_is_read(recipe, override, message):
    with pytest.raises(UserError) as caught:
        build_config(get_recipe(recipe), overrides=[override])
    assert message in str(caught.value)


@pytest.mark.parametrize(("override", "message"), [
    ("trainer.epoch=3", "did you mean 'trainer.epochs'"),
    ("trainer.epochs=three", "must be an integer"),
    ("trainer.device=tpu", "must be one of auto, cpu, cuda, mps"),
    ("trainer.deterministic=maybe", "true or false"),
    ("trainer=3", "is a section"),
    ("trainer.epochs.x=1", "is a value, not a section"),
    ("model.args.width.x=1", "'model.args.width' is a value, not a section"),
    ("trainer.grad_clip=nan", "trainer.grad_clip must be a finite number, not 'nan'"),
    ("trainer.epochs=0", "trainer.epochs must be >= 1"),
    ("optim.lr=-1", "optim.lr must be a positive number"),
    ("data.limit=0", "data.limit must be a positive"),
    ("epochs", "expected KEY=VALUE"),
])
def test_bad_overrides_are_user_errors(override, message):
    with pytest.raises(UserError, match=message):
        build_config(digits(), overrides=[override])


def test_yaml_file_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("trainer:\n  epochs: 7\n  seed: 3\noptim:\n  lr: 0.2\n", encoding="utf-8")
    config = build_config(digits(), str(path), ["trainer.seed=4"])
    assert (config.trainer.epochs, config.trainer.seed, config.optim.lr) == (7, 4, 0.2)
    assert config.data.source == "mnist5k"  # untouched defaults stay


@pytest.mark.parametrize(("text", "message"), [
    ("trainer: [1, 2]", "is a section"),
    ("trainer:\n  epocs: 3\n", "unknown config key 'trainer.epocs'"),
    ("- a\n- b\n", "must hold a mapping"),
    ("trainer: {epochs: 3", "not valid YAML"),
    ("trainer:\n  epochs: 3\n  epochs: 5\n", "the key 'epochs' is given twice"),  # PyYAML would keep the 5
    ("trainer: &t {epochs: 3}\noptim: {<<: *t, epochs: 4}\n", "unknown config key 'optim.epochs'"),  # merged
    ("recipe: fashion\n", "config for recipe 'fashion'"),
])
def test_bad_yaml_files(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UserError, match=message):
        build_config(digits(), str(path))


def test_round_trip_through_dict():
    from dlzoo.config import to_dict

    config = build_config(digits(), overrides=["trainer.epochs=5"])
    again = from_dict(type(config), to_dict(config))
    assert again == config
    validate(again)


def test_parse_and_set_key_directly():
    config = digits().config()
    for key, value in parse_overrides(["data.augment.degrees=5", "data.augment.enabled=false"]):
        set_key(config, key, value)
    assert config.data.augment.degrees == 5.0 and config.data.augment.enabled is False


def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path, monkeypatch):
    from dlzoo.runs import new_run_dir

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("time.strftime", lambda _: "20261206-120000")  # one second for all of them
    made = [new_run_dir("digits", None) for _ in range(3)]
    assert [path.name for path in made] == ["digits-20261206-120000", "digits-20261206-120000-2",
                                            "digits-20261206-120000-3"]
    assert all(path.is_dir() for path in made)  # each taken as it was named, before the next one looked



def test_a_config_file_of_megabytes_is_refused_unread(tmp_path):
    """`--config /dev/zero` read without end (300 MB a second) until killed; a data file given by mistake too."""
    from dlzoo.config import load_yaml

    big = tmp_path / "data.yaml"
    big.write_bytes(b"# \n" * 400_000)
    with pytest.raises(UserError, match="is over 1 MiB: not a config"):
        load_yaml(big)
    with pytest.raises(UserError, match="is over 1 MiB"):
        load_yaml("/dev/zero")


def test_type_mismatch_checks_json_values_without_converting_them():
    """What `Task.checkpoint_meta` checks a checkpoint's meta with: the innermost wrong entry is named."""
    from typing import Literal, TypedDict

    from dlzoo.config import Pixels, PositiveFloat, PositiveInt, type_mismatch
    from dlzoo.vision.digits import DigitPreprocessing

    class Stored(TypedDict):
        shape: list[int]

    assert type_mismatch(["a", "b"], list[str], "k") is None
    assert type_mismatch(3, float, "k") is None and type_mismatch(None, str | None, "k") is None
    assert type_mismatch({"name": "mnist-digit", "size": 28}, DigitPreprocessing, "k") is None
    assert type_mismatch("5", int, "k") == 'k is "5", not an integer'  # not converted, as `coerce` would
    assert type_mismatch(True, int, "k") == "k is true, not an integer"
    assert type_mismatch(5, list[str], "k") == "k is 5, not a list"
    assert type_mismatch([{"a": ["x", 1]}], list[dict[str, list[str]]], "k") == "k[0].a[1] is 1, not a string"
    assert type_mismatch([], str | None, "k") == "k is [], not a string or null"
    assert type_mismatch({"size": 0}, DigitPreprocessing, "k") == "k.size is 0, not a positive number"
    assert type_mismatch(-1.5, PositiveFloat, "k") == "k is -1.5, not a positive number"
    assert type_mismatch([1, 0], list[PositiveInt], "k") == "k[1] is 0, not a positive number"
    assert type_mismatch(8192, Pixels, "k") is None and type_mismatch(8193, Pixels, "k") == "k is 8193, more than 8192"
    assert type_mismatch({}, Stored, "k").startswith("k has no key shape")
    assert type_mismatch({"shape": [1], "x": 2}, Stored, "k").startswith("k has an unknown key x")
    level = Literal["word", "char"]  # a text run's meta.tokens
    assert type_mismatch("char", level, "k") is None
    assert type_mismatch("words", level, "k") == 'k is "words", not one of word, char'
    assert type_mismatch(True, Literal[1, 2], "k") == "k is true, not one of 1, 2"  # JSON's true is not 1
