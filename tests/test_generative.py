"""The generative recipes end to end on tiny real subsets: training, sample grids, `dlzoo generate`, resume, errors."""

import io
import json
import shutil
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file

from conftest import ROOT, assert_user_error, raw_request, serving
from dlzoo.engine import checkpoint
from snippets import python_blocks, run_block

CPU = ["trainer.device=cpu"]
TINY_VAE = ["data.limit=96", "data.batch_size=32", "trainer.epochs=2", "iw_samples=2", *CPU]
TINY_GAN = ["data.limit=32", "data.batch_size=16", "gan.n_critic=2", "trainer.epochs=1", *CPU]


def weights(run_dir, epoch):
    return load_file(str(run_dir / "checkpoints" / f"epoch-{epoch:04d}" / "model.safetensors"))


def picture_size(path):
    with Image.open(path) as picture:
        picture.verify()
    with Image.open(path) as picture:
        return picture.size


def grid_size(rows: int, columns: int) -> tuple[int, int]:
    return columns * 30 + 2, rows * 30 + 2  # 28-pixel images, 2-pixel padding (torchvision's make_grid)


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    from dlzoo.cli import main

    run_dir = tmp_path_factory.mktemp("runs") / "vae"
    assert main(["train", "vae-digits", *TINY_VAE, "--out", str(run_dir)]) == 0
    return run_dir


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory):
    from dlzoo.cli import main

    run_dir = tmp_path_factory.mktemp("runs") / "gan"
    assert main(["train", "cgan-digits", *TINY_GAN, "--out", str(run_dir)]) == 0
    return run_dir


def test_vae_trains_reports_nats_and_saves_grids(vae_run):
    summary = json.loads((vae_run / "summary.json").read_text())
    test = summary["metrics"]["test"]
    assert 0 < test["nll_iw"] <= test["neg_elbo"] < 784 * 2  # nats per image; the IW bound is the tighter one
    assert summary["metrics"]["train"]["loss"] == pytest.approx(
        summary["metrics"]["train"]["reconstruction"] + summary["metrics"]["train"]["kl"], rel=1e-4)
    for epoch in (1, 2):
        assert picture_size(vae_run / "samples" / f"epoch-{epoch:04d}.png") == grid_size(8, 8)
    meta = checkpoint.read_metadata(checkpoint.latest(vae_run) / checkpoint.WEIGHTS)["meta"]
    assert meta["data_model"].startswith("binarised") and not meta["conditional"]


def test_no_two_evaluation_draws_share_a_random_stream(vae_run):
    """The held-out batches' noise, the judge's images, the grids and the VAE's binarisation each have seeds of their
    own (on the CPU, generators seeded alike draw the same numbers: batch 0's noise once mirrored the binarisation)."""
    from dlzoo.runs import load_for_evaluation, open_run
    from dlzoo.tasks.generative import BINARY_SEED, GRID_SEED, JUDGE_SEED

    task, _ = load_for_evaluation(open_run(vae_run), ["test"], "cpu")
    batch_seeds = [generator.initial_seed() for _, generator in task.held_out_share(batch_size=10)]
    assert len(batch_seeds) == 100 and len(set(batch_seeds)) == 100  # mnist5k's 1,000 held-out digits
    assert not {BINARY_SEED, GRID_SEED, JUDGE_SEED} & set(batch_seeds)
    assert len({BINARY_SEED, GRID_SEED, JUDGE_SEED}) == 3


def test_generate_from_a_vae_writes_samples_reconstructions_and_interpolation(cli, vae_run, tmp_path):
    out = tmp_path / "grids" / "vae.png"
    result = cli("generate", vae_run, "--n", "16", "--seed", "3", "--out", out)
    assert result.code == 0, result.err
    assert picture_size(out) == grid_size(4, 4)
    assert picture_size(tmp_path / "grids" / "vae-reconstructions.png") == grid_size(2, 20)  # 2 per class
    assert picture_size(tmp_path / "grids" / "vae-interpolation.png") == grid_size(1, 10)
    again = tmp_path / "again.png"
    assert cli("generate", vae_run, "--n", "16", "--seed", "3", "--out", again).code == 0
    assert out.read_bytes() == again.read_bytes()  # the seed fixes the picture
    assert cli("generate", vae_run, "--n", "16", "--seed", "4", "--out", again).code == 0
    assert out.read_bytes() != again.read_bytes()


def generator_parameters(state):
    return [key for key in state if key.startswith("generator.") and "running_" not in key and "batches" not in key]


def test_cgan_trains_and_saves_a_row_per_class(gan_run):
    summary = json.loads((gan_run / "summary.json").read_text())
    assert summary["steps"] == 2 and set(summary["parameters"]) == {"generator", "critic", "generator_ema"}
    train = summary["metrics"]["train"]
    assert {"loss", "wasserstein", "gradient_penalty"} <= set(train) and train["gradient_penalty"] >= 0
    assert picture_size(gan_run / "samples" / "epoch-0001.png") == grid_size(10, 8)


def test_generator_steps_only_every_n_critic_batches(cli, tmp_path):
    # 2 batches an epoch and n_critic=100: in epoch 2 the critic learns and the generator must not move.
    run = tmp_path / "run"
    assert cli("train", "cgan-digits", *TINY_GAN, "gan.n_critic=100", "gan.ema=0", "trainer.epochs=2",
               "--out", run).code == 0
    first, second = weights(run, 1), weights(run, 2)
    assert not any(key.startswith("generator_ema.") for key in first)  # ema=0: no averaged copy
    assert all(torch.equal(first[key], second[key]) for key in generator_parameters(first))
    critic = "critic.score.parametrizations.weight.original"
    assert not torch.equal(first[critic], second[critic])


def test_generate_per_class_and_one_class(cli, gan_run, tmp_path):
    assert cli("generate", gan_run, "--out", tmp_path / "all.png").code == 0
    assert picture_size(tmp_path / "all.png") == grid_size(10, 8)
    assert cli("generate", gan_run, "--n", "3", "--out", tmp_path / "three.png").code == 0
    assert picture_size(tmp_path / "three.png") == grid_size(10, 3)
    result = cli("generate", gan_run, "--class", "7", "--n", "6", "--out", tmp_path / "sevens.jpg")
    assert result.code == 0 and "class 7" in result.out
    assert picture_size(tmp_path / "sevens.jpg") == grid_size(2, 3)
    assert not (tmp_path / "sevens-reconstructions.jpg").exists()  # VAEs only


def test_cgan_resume_is_exact(cli, tmp_path):
    whole = tmp_path / "whole"
    assert cli("train", "cgan-digits", *TINY_GAN, "trainer.epochs=2", "--out", whole).code == 0
    # The same run as if killed after its first checkpoint: a copy without epoch 2, then resumed.
    resumed = tmp_path / "resumed"
    shutil.copytree(whole, resumed)
    shutil.rmtree(resumed / "checkpoints" / "epoch-0002")
    (resumed / "samples" / "epoch-0002.png").unlink()
    assert cli("train", "--resume", resumed).code == 0
    a, b = weights(whole, 2), weights(resumed, 2)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (resumed / "samples" / "epoch-0002.png").read_bytes() == (whole / "samples" / "epoch-0002.png").read_bytes()
    before = weights(whole, 1)  # with n_critic=2 the generator and its average did learn in epoch 2
    for prefix in ("generator.", "generator_ema."):
        keys = [key for key in a if key.startswith(prefix) and "running_" not in key and "batches" not in key]
        assert any(not torch.equal(before[key], a[key]) for key in keys)


def test_a_judge_measures_without_changing_training(cli, digits_run, tmp_path):
    args = ["vae-digits", "model.name=vae-mlp", "data.limit=32", "data.batch_size=16", "trainer.epochs=1",
            "iw_samples=1", *CPU]
    assert cli("train", *args, "--out", tmp_path / "plain").code == 0
    assert cli("train", *args, f"judge={digits_run}", "--out", tmp_path / "judged").code == 0
    a, b = weights(tmp_path / "plain", 1), weights(tmp_path / "judged", 1)
    assert all(torch.equal(a[key], b[key]) for key in a)
    judged = json.loads((tmp_path / "judged" / "summary.json").read_text())["metrics"]["test"]
    plain = json.loads((tmp_path / "plain" / "summary.json").read_text())["metrics"]["test"]
    assert judged["nll_iw"] == plain["nll_iw"] and "frechet" in judged and "frechet" not in plain
    assert judged["frechet_floor"] > 0 and judged["frechet"] > judged["frechet_floor"]
    # Trained on data.limit images, judged against all of the source's: the numbers `dlzoo judge` gives
    result = cli("judge", tmp_path / "judged", "--classifier", digits_run, "--json")
    assert result.code == 0, result.err
    alone = json.loads(result.out)
    for key in ("frechet", "frechet_floor"):
        assert alone[key] == pytest.approx(judged[key], rel=1e-4), key


def test_judge_names_the_checkpoint_that_judged(cli, gan_run, digits_run):
    """A kept checkpoint of the classifier judges when named: the report names it, not its run (whose latest
    checkpoint is another)."""
    kept = digits_run / "checkpoints" / "epoch-0001"
    result = cli("judge", gan_run, "--classifier", kept, "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["judge"] == str(kept)
    result = cli("judge", gan_run, "--classifier", kept)
    assert result.code == 0, result.err
    assert f"({kept})" in result.out.splitlines()[0]


def test_a_judged_run_resumes_from_another_folder(cli, digits_run, tmp_path, monkeypatch):
    """`judge=runs/digits` is typed relative to where training starts; the run stores it absolute, so `dlzoo train
    --resume` works from anywhere."""
    monkeypatch.chdir(digits_run.parent)
    run = tmp_path / "judged"
    assert cli("train", "cgan-digits", *TINY_GAN, f"judge={digits_run.name}", "--out", run).code == 0
    assert yaml.safe_load((run / "config.yaml").read_text())["judge"] == str(digits_run.resolve())
    # As if killed after its last checkpoint, before its summary: the resume sets the run up, judge and all, and
    # evaluates it (as one killed in an earlier epoch would, after training on), without another epoch to train.
    (run / "summary.json").unlink()
    monkeypatch.chdir(tmp_path)
    result = cli("train", "--resume", run)
    assert result.code == 0, result.err
    assert "frechet" in json.loads((run / "summary.json").read_text())["metrics"]["test"]


@pytest.mark.parametrize("args, fragment", [
    (["train", "cgan-digits", "gan.n_critic=0", *CPU], "gan.n_critic must be >= 1"),
    (["train", "cgan-digits", "gan.gp_weight=nan", *CPU], "gan.gp_weight must be a finite number, not 'nan'"),
    (["train", "cgan-digits", "trainer.compile=true", *CPU], "double backward"),
    (["train", "vae-digits", "model.name=cgan-generator", *CPU], "vae-digits trains a vae: vae-conv, vae-mlp"),
    (["train", "vae-digits", "iw_samples=0", *CPU], "iw_samples"),
    (["train", "cgan-digits", "generator.args.latent_dim=8", *CPU], "latent_dim"),
    (["train", "cgan-digits", "judge=/nonexistent/run", *CPU], "run directory not found"),
])
def test_bad_generative_configs_fail_before_writing(cli, tmp_path, args, fragment):
    out = tmp_path / "run"
    assert_user_error(cli(*args, "--out", out), fragment)
    assert not out.exists()


def test_a_mistake_only_a_benchmarks_training_meets_is_raised_and_leaves_no_folder(tmp_path, monkeypatch, capsys):
    """`dlzoo bench` trains through the CLI: a mistake met in training (a judge run not there) was printed by that
    inner command, then raised as a RuntimeError with an empty message (a traceback), and its temporary folder
    stayed. It reaches the benchmark's caller as the UserError it is, for `dlzoo bench` to say in one line."""
    import tempfile

    from dlzoo.bench.common import train_recipe
    from dlzoo.errors import UserError

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(UserError, match="run directory not found"):
        train_recipe("cgan-digits", ["judge=/nonexistent/run", *CPU])
    assert capsys.readouterr().err == ""  # said once, by whoever catches it
    assert not list(tmp_path.glob("bench-*"))


def test_generative_benchmark_names_the_threads_its_runs_trained_on(monkeypatch):
    import torch

    import dlzoo.bench.generative as generative

    scores = {"test": {"conditional_accuracy": 0.5, "frechet": 2.0, "frechet_floor": 1.0, "nll_iw": 90.0,
                       "neg_elbo": 95.0}}
    measured = {"cgan": scores, "vae": {"vae-conv": scores, "vae-mlp": scores}}  # what training would return
    monkeypatch.setattr(generative, "_data_set", lambda *args: measured)
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:  # threads=1 trains on one thread (trainer.threads=1); the report said torch's own count, here 3
        assert generative.run(threads=1)["machine"]["device_name"].endswith(", 1 thread")
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_generate_user_errors(cli, vae_run, gan_run, digits_run, tmp_path):
    out = tmp_path / "x.png"
    assert_user_error(cli("generate", digits_run, "--out", out), "not a generative")
    assert_user_error(cli("generate", vae_run, "--class", "3", "--out", out), "not class-conditional")
    assert_user_error(cli("generate", gan_run, "--class", "12", "--out", out), "classes 0..9")
    assert_user_error(cli("generate", gan_run, "--class", "cat", "--out", out), "not one of")
    assert_user_error(cli("generate", gan_run, "--class", "²", "--out", out), "not one of")  # a digit int() refuses
    assert_user_error(cli("generate", gan_run, "--n", "0", "--out", out), "--n")
    for n in ("0", "-1"):  # a VAE too, and a negative count (argparse takes "-1" as a value, not an option)
        assert_user_error(cli("generate", vae_run, "--n", n, "--out", out), "--n must be between 1 and", f"got {n}")
    # --n is per class without --class: 10 x 3,000 images would be a 90,002-pixel-wide grid, which the GIF, TGA,
    # PCX and SGI writers met with a traceback (their headers hold 16-bit sizes); the cap is on images drawn
    assert_user_error(cli("generate", gan_run, "--n", "3000", "--out", tmp_path / "x.gif"), "30,000 images",
                      "--n 1000")
    assert_user_error(cli("generate", gan_run, "--out", tmp_path / "grid.txt"), "extension")
    for unwritable in ("grid.psd", "grid.xbm"):  # PIL reads these but cannot write them (or not a grey picture)
        assert_user_error(cli("generate", gan_run, "--out", tmp_path / unwritable), "can be read but not written",
                          "extension such as .png")
    assert_user_error(cli("generate", tmp_path / "missing", "--out", out), "not found")
    assert_user_error(cli("generate", gan_run), "--out")
    assert not out.exists() and not list(tmp_path.iterdir())
    assert_user_error(cli("judge", gan_run, "--classifier", vae_run), "image classifier")


def test_generate_writes_all_grids_or_none(cli, vae_run, tmp_path):
    """A VAE's extra grids that cannot be written (a name too long with `-reconstructions`, a folder in the way)
    leave no main grid behind, no temporary files and no folder made for them."""
    long_name = "v" * 240 + ".png"  # fits a file system's 255 bytes (so does its temporary file); with
    # "-reconstructions" it does not
    for out in (tmp_path / long_name, tmp_path / "new" / "deeper" / long_name):
        assert_user_error(cli("generate", vae_run, "--n", "4", "--out", out), "too long")
        assert not list(tmp_path.iterdir())
    (tmp_path / "grid-interpolation.png").mkdir()
    # Its name is not the user's to choose: the message said to give a file name inside that folder instead
    assert_user_error(cli("generate", vae_run, "--n", "4", "--out", tmp_path / "grid.png"), "grid-interpolation.png",
                      "is a folder", "choose another --out")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["grid-interpolation.png"]


def test_a_run_failing_at_its_first_checkpoint_leaves_not_even_its_samples(cli, tmp_path, monkeypatch):
    """The epoch's sample grid is written before its checkpoint: a new run that fails there (a full disk) takes
    the grid away with the rest, as it does its log, and the folders --out made for it."""
    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint, "save", full_disk)
    run_dir = tmp_path / "new" / "runs" / "run"
    assert_user_error(cli("train", "cgan-digits", *TINY_GAN, "--out", run_dir), "No space left on device")
    assert not list(tmp_path.iterdir())


def test_an_out_folder_holding_what_a_run_writes_is_refused(cli, tmp_path):
    """A run that stops before its first checkpoint removes what it wrote: an --out folder may hold a user's own
    files, but none named as the run's (its log, checkpoints, TensorBoard folder, a task's samples/)."""
    for name in ("samples", "checkpoints", "tensorboard", "metrics.jsonl"):
        out = tmp_path / name / "run"
        (out / name).mkdir(parents=True)
        (out / name / "mine.png").write_bytes(b"keep me")
        (out / "notes.txt").write_text("mine too")
        assert_user_error(cli("train", "vae-digits", *TINY_VAE, "--out", out), f"already holds {name}")
        assert (out / name / "mine.png").read_bytes() == b"keep me"
        assert sorted(path.name for path in out.iterdir()) == sorted([name, "notes.txt"])


def test_predict_refuses_a_generative_run(cli, vae_run, gan_run, tmp_path):
    """A generative run draws images rather than reads them: `predict` says so in one line."""
    picture = tmp_path / "picture.png"
    Image.new("L", (28, 28)).save(picture)
    for run_dir, recipe in ((vae_run, "vae-digits"), (gan_run, "cgan-digits")):
        assert_user_error(cli("predict", run_dir, picture), f"recipe '{recipe}' does not predict from files",
                          f"dlzoo generate {run_dir}")


def served(base: str, path: str) -> tuple[int, str, bytes]:
    """GET base + path: the answer's status, content type and body, refusals included."""
    try:
        with urllib.request.urlopen(base + path) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


def pixels(picture) -> np.ndarray:
    with Image.open(picture) as image:
        return np.asarray(image)


@pytest.mark.parametrize("recipe", ["cgan", "vae"])
def test_serve_draws_the_grid_generate_writes(cli, vae_run, gan_run, tmp_path, recipe):
    """GET /generate answers with the picture `dlzoo generate` writes for the same options, pixel for pixel."""
    run_dir = gan_run if recipe == "cgan" else vae_run
    queries = {"n=5&seed=3": ["--n", "5", "--seed", "3"], "": []}  # the defaults: 64 images, or 8 per class
    if recipe == "cgan":
        queries["class=7&n=16&seed=0"] = ["--class", "7", "--n", "16", "--seed", "0"]
    with serving(run_dir) as (base, _):
        for query, options in queries.items():
            status, kind, body = served(base, f"/generate?{query}")
            assert (status, kind) == (200, "image/png"), body
            out = tmp_path / f"{recipe}-{len(options)}.png"
            assert cli("generate", run_dir, *options, "--out", out).code == 0
            assert np.array_equal(pixels(io.BytesIO(body)), pixels(out)), query
        assert pixels(io.BytesIO(served(base, "/generate?seed=3&n=5")[2])).shape == grid_size(
            *((10, 5) if recipe == "cgan" else (2, 3)))[::-1]


def test_serve_refuses_a_bad_grid_in_the_words_of_generate(cli, vae_run, gan_run, tmp_path):
    """A mistake in GET /generate's query is a 400 with `dlzoo generate`'s message, its options named as in the query
    (n= for --n)."""
    out = tmp_path / "x.png"
    cases = [  # run, query, generate's options, what both say, what the server's message says in its own words
        (gan_run, "class=12", ["--class", "12"], "the model has classes 0..9", "class=12:"),
        (gan_run, "class=cat", ["--class", "cat"], "is not one of: 0, 1, 2", "class='cat'"),
        (gan_run, "n=0", ["--n", "0"], "must be between 1 and 10000, got 0", "n= must"),
        (gan_run, "n=3000", ["--n", "3000"], "is 30,000 images (10 classes), more than 10,000", "give n=1000 or less"),
        (vae_run, "class=3", ["--class", "3"], "vae-digits is not class-conditional", "class= needs a cgan-* run"),
        (gan_run, "seed=-1", ["--seed", "-1"], "a seed must be in [0, 2^32), got -1", "seed=-1"),
        (gan_run, "seed=x", ["--seed", "x"], "a seed is an integer, not 'x'", "seed=x"),
    ]
    for run_dir, _, options, said, _ in cases:  # before serving: a server logs its requests on stderr too
        assert_user_error(cli("generate", run_dir, *options, "--out", out), said)
    assert not out.exists()
    for run_dir in (gan_run, vae_run):
        with serving(run_dir) as (base, _):
            for _, query, _, said, own_words in (case for case in cases if case[0] == run_dir):
                status, kind, body = served(base, f"/generate?{query}")
                assert (status, kind) == (400, "application/json; charset=utf-8"), body
                error = json.loads(body)["error"]
                assert said in error and own_words in error, error
    with serving(gan_run) as (base, _):
        for query, said in (("count=3", "/generate takes class=, n= and seed=, not count="),
                            ("n=1&n=2", "give n= once, not 2 times"), ("n=", "n= is a whole number, not ''"),
                            ("n=many", "n= is a whole number, not 'many'")):
            status, _, body = served(base, f"/generate?{query}")
            assert (status, json.loads(body)) == (400, {"error": said})


def test_a_generative_server_answers_its_own_endpoints(cli, vae_run, gan_run, monkeypatch):
    """`dlzoo serve` starts on a generative run, names GET /generate in its start line and GET /info, and points a
    POST /predict there."""
    from dlzoo.serve import PredictionServer

    with serving(gan_run) as (base, _):
        info = json.loads(served(base, "/info")[2])
        assert info["recipe"] == "cgan-digits" and info["meta"]["classes"] == [str(i) for i in range(10)]
        assert "held_out_examples" not in info["meta"]
        assert info["endpoints"] == ["GET /generate?class=C&n=N&seed=S", "GET /info", "GET /health"]
        status, body = raw_request(base, "POST", "/predict?name=x.png", {"Content-Length": "1"}, b"x")
        assert status == 404 and json.loads(body)["error"].startswith(
            "recipe 'cgan-digits' draws pictures rather than predicting from files; this server answers GET /generate")
        status, body = raw_request(base, "POST", "/generate", {"Content-Length": "0"})
        assert status == 405 and "curl -o grid.png" in json.loads(body)["error"]
    with serving(vae_run) as (base, _):  # not conditional: no class=
        assert json.loads(served(base, "/info")[2])["endpoints"][0] == "GET /generate?n=N&seed=S"

    def stop(self):  # as Ctrl-C does, once it has said where it listens
        raise KeyboardInterrupt

    monkeypatch.setattr(PredictionServer, "serve_forever", stop)
    result = cli("serve", gan_run, "--port", "0", "--device", "cpu")
    assert result.code == 0 and "(GET /generate?class=C&n=N&seed=S, GET /info, GET /health)" in result.out


def exported_program(cli, run_dir, out):
    """`dlzoo export RUN --out OUT`'s program, loaded with torch alone, and its sidecar."""
    result = cli("export", run_dir, "--out", out)
    assert result.code == 0, result.err
    return torch.export.load(str(out)).module(), json.loads(out.with_name(out.name + ".json").read_text())


def test_an_exported_vae_draws_from_given_noise_what_generate_draws(cli, vae_run, tmp_path):
    from dlzoo.tasks.generative import load_generative

    program, sidecar = exported_program(cli, vae_run, tmp_path / "vae.pt2")
    task = load_generative(vae_run, "cpu")
    z = task.noise(5, task.seeded(7))  # another batch size than the example's: the batch dimension is dynamic
    images = program(z)
    assert images.shape == (5, 1, 28, 28) and images.dtype == torch.float32
    assert torch.allclose(images, task.draw(5, None, task.seeded(7)), atol=1e-5)
    assert images.min() >= 0 and images.max() <= 1 and images.std() > 0
    # The latent size, as data.
    assert sidecar["inputs"] == [{"name": "z", "shape": ["batch", 20], "dtype": "torch.float32"}]
    assert "z (batch, 20)" in sidecar["preparation"] and "standard normal" in sidecar["preparation"]
    assert sidecar["outputs"].startswith("images (batch, 1, 28, 28) float32 in [0, 1]: each pixel's probability")
    assert "0 is black" in sidecar["outputs"]
    assert sidecar["recipe"] == "vae-digits" and sidecar["meta"]["conditional"] is False
    assert "held_out_examples" not in sidecar["meta"]  # dlzoo's own data, 20 KB of base64
    # The decoder alone: the encoder's weights are not the program's
    assert not any("encoder" in name for name in torch.export.load(str(tmp_path / "vae.pt2")).state_dict)


def test_an_exported_cgan_draws_from_given_noise_and_labels_what_generate_draws(cli, gan_run, tmp_path):
    from dlzoo.tasks.generative import load_generative

    program, sidecar = exported_program(cli, gan_run, tmp_path / "cgan.pt2")
    task = load_generative(gan_run, "cpu")
    z, labels = task.noise(3, task.seeded(7)), torch.tensor([7, 0, 7])
    images = program(z, labels)
    assert images.shape == (3, 1, 28, 28) and images.dtype == torch.float32
    assert torch.allclose(images, task.draw(3, labels, task.seeded(7)), atol=1e-5)
    assert not torch.allclose(images[0], program(z[:1], torch.tensor([3]))[0], atol=1e-3)  # the label steers it
    assert images.min() >= 0 and images.max() <= 1
    assert sidecar["inputs"] == [{"name": "z", "shape": ["batch", 64], "dtype": "torch.float32"},
                                 {"name": "labels", "shape": ["batch"], "dtype": "torch.int64"}]
    assert "z (batch, 64)" in sidecar["preparation"] and "labels (batch,) int64" in sidecar["preparation"]
    assert "index 0..9 into meta.classes" in sidecar["preparation"]
    assert sidecar["outputs"].startswith("images (batch, 1, 28, 28) float32 in [0, 1]: grey levels")
    assert sidecar["meta"]["classes"] == [str(i) for i in range(10)] and sidecar["meta"]["conditional"] is True


def test_the_export_section_of_the_doc_runs_on_exported_runs(cli, vae_run, gan_run, tmp_path, monkeypatch):
    doc = ROOT / "docs" / "generative.md"
    blocks = python_blocks(doc.read_text(encoding="utf-8"), "Export")
    assert len(blocks) == 1
    for run_dir, name in ((gan_run, "cgan.pt2"), (vae_run, "vae.pt2")):  # the names the snippet loads
        result = cli("export", run_dir, "--out", tmp_path / name)
        assert result.code == 0, result.err
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "generative_doc"}
    run_block(doc, *blocks[0], namespace)
    for name, batch in (("images", 10), ("vae_images", 16)):  # as its comment and its noise say
        images = namespace[name]
        assert images.shape == (batch, 1, 28, 28) and images.dtype == torch.float32, name
        assert images.min() >= 0 and images.max() <= 1, name


def test_an_exported_generative_onnx_program_draws_what_generate_draws(cli, vae_run, gan_run, tmp_path, recwarn):
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from dlzoo.tasks.generative import load_generative

    for run_dir in (vae_run, gan_run):
        out = tmp_path / f"{run_dir.name}.onnx"
        result = cli("export", run_dir, "--format", "onnx", "--out", out)
        assert result.code == 0, result.err
        assert not [str(w.message) for w in recwarn if "axis name" in str(w.message)]  # torch's note on 2 inputs
        task = load_generative(run_dir, "cpu")
        z, labels = task.noise(3, task.seeded(5)), torch.tensor([1, 2, 1]) if task.conditional else None
        feeds = {"z": z.numpy(), "labels": labels.numpy()} if task.conditional else {"z": z.numpy()}
        session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        (images,) = session.run(None, feeds)
        assert images.shape == (3, 1, 28, 28)
        assert np.allclose(images, task.draw(3, labels, task.seeded(5)).numpy(), atol=1e-4)


def test_a_gan_step_updates_the_loss_scale_once_and_leaves_warning_filters_alone():
    """AMP's rule: one scaler.update() per iteration, after every optimizer of the step (the critic's and, every
    n_critic steps, the generator's) has stepped. Counted here on the CPU, where the scaler itself is disabled."""
    import warnings

    from dlzoo.engine.reporting import Console
    from dlzoo.engine.runtime import Runtime
    from dlzoo.engine.trainer import Trainer
    from dlzoo.recipes import get_recipe
    from dlzoo.runs import build_config
    from dlzoo.tasks.base import StepContext

    recipe = get_recipe("cgan-digits")
    config = build_config(recipe, None, TINY_GAN)
    runtime = Runtime.create(config.trainer, init_process_group=False)
    task = recipe.task(config)
    task.setup(runtime)
    trainer = Trainer(task, runtime, run_dir=None, console=Console(enabled=False))
    loader = trainer.prepare()
    assert isinstance(trainer, StepContext)  # what a task's train_step may use of it, the Trainer has
    stepped, updates = [], []
    step, update = trainer.scaler.step, trainer.scaler.update
    trainer.scaler.step = lambda optimizer: (stepped.append(trainer.step), step(optimizer))
    trainer.scaler.update = lambda: (updates.append(trainer.step), update())
    filters = list(warnings.filters)
    loader.set_epoch(0)
    trainer.train_epoch(loader, 0)
    assert len(stepped) == len(loader) + len(loader) // 2  # the critic every step, the generator every second
    assert updates == list(range(len(loader)))  # once per step
    assert warnings.filters == filters


def test_damaged_held_out_examples_are_named_not_a_traceback(cli, vae_run, tmp_path):
    """Of the right types but not the pictures their shape says: a ValueError of numpy's reshape from generate."""
    from safetensors.torch import save_file

    run = tmp_path / "run"
    shutil.copytree(vae_run, run)
    for weights in (run / "checkpoints").glob("*/model.safetensors"):
        metadata = checkpoint.read_metadata(weights)
        metadata["meta"]["held_out_examples"] = {"shape": [2, 3, 3], "labels": [1, 2], "uint8_base64": "AAAA"}
        save_file(load_file(str(weights)), str(weights), metadata={"dlzoo": json.dumps(metadata)})
    assert_user_error(cli("generate", run, "--out", tmp_path / "grid.png"), "meta.held_out_examples is damaged",
                      "3 pixel values and 2 labels, for pictures of shape [2, 3, 3]")
    assert not list(tmp_path.glob("grid*"))
