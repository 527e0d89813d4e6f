"""DDP through torchrun with 2 gloo processes on the CPU."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from safetensors.torch import load_file

from conftest import ROOT, Result, review_folder

# A validation split too (held out of all 4,000 training digits before the limit), sharded like the test set, and the
# best epoch by it kept: epoch 1 is saved only as the first best, which every rank must agree on (a collective).
TWO_PROCESSES = ["digits", "data.limit=800", "data.val_fraction=0.1", "trainer.epochs=2", "trainer.device=cpu",
                 "trainer.keep_best=val.accuracy", "trainer.checkpoint_every=2"]


def torchrun(*args) -> Result:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "dlzoo",
         *map(str, args)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    return Result(done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("ddp") / "run"
    done = torchrun("train", *TWO_PROCESSES, "--out", run_dir)
    assert done.code == 0, done.err[-3000:]
    return run_dir, done


@pytest.mark.multiprocess
def test_torchrun_two_processes(cli, ddp_run):
    run_dir, done = ddp_run
    # Only rank 0 logs: each epoch line appears once.
    assert done.out.count("epoch 1/2 ") == 1, done.out
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["world_size"] == 2
    assert (run_dir / "checkpoints" / "epoch-0001").is_dir() and summary["best"]["split"] == "val"
    entries = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    first = next(e for e in entries if e["split"] == "train")
    # 800 samples over 2 ranks = 400 each, batches of 128 with the last partial batch dropped: 3 steps an epoch.
    assert first["step"] == 3
    # Held-out metrics are reduced over the ranks' shards: they equal a single-process evaluation of the same weights.
    evaluated = cli("eval", run_dir, "--json", "--device", "cpu")
    assert evaluated.code == 0, evaluated.err
    for split in ("val", "test"):
        single = json.loads(evaluated.out)["metrics"][split]
        assert single["accuracy"] == pytest.approx(summary["metrics"][split]["accuracy"], abs=1e-9)
        assert single["loss"] == pytest.approx(summary["metrics"][split]["loss"], rel=1e-4)


@pytest.mark.multiprocess
def test_a_torchrun_run_resumes_exactly_and_only_with_as_many_processes(cli, ddp_run, tmp_path):
    run_dir, _ = ddp_run
    resumed = tmp_path / "resumed"
    shutil.copytree(run_dir, resumed)
    shutil.rmtree(resumed / "checkpoints" / "epoch-0002")  # as if killed in the second epoch
    (resumed / "summary.json").unlink()
    alone = cli("train", "--resume", resumed)
    assert alone.code == 2 and alone.err.count("\n") == 1, alone.err
    assert "trained in 2 processes, not 1: resume it with torchrun --nproc_per_node 2" in alone.err
    done = torchrun("train", "--resume", resumed)
    assert done.code == 0, done.err[-3000:]
    # Every rank's RNG (the digits net's dropout, its augmentation) is saved: the second epoch comes out the same.
    original = load_file(str(run_dir / "checkpoints" / "epoch-0002" / "model.safetensors"))
    again = load_file(str(resumed / "checkpoints" / "epoch-0002" / "model.safetensors"))
    assert all((original[key] == again[key]).all() for key in original)


@pytest.mark.multiprocess
def test_mistakes_under_torchrun_are_told_once(ddp_run, tmp_path):
    run_dir, _ = ddp_run
    for args, message in ((["train", "digits", "trainer.bogus=1"], "unknown config key 'trainer.bogus'"),
                          (["train", *TWO_PROCESSES, "--out", run_dir], "already holds a run"),
                          (["eval", run_dir], "dlzoo eval runs in one process: run it without torchrun")):
        done = torchrun(*args)
        assert done.code != 0
        assert done.err.count("dlzoo: error:") == 1 and message in done.err, done.err[-3000:]
        assert "Traceback" not in done.err.split("dlzoo: error:")[0], done.err[-3000:]


@pytest.mark.multiprocess
def test_a_broken_picture_met_by_one_process_is_told_once(tmp_path):
    """A streamed picture is read by one process only: it says what is wrong, and the other, whose next collective
    finds its peer gone ("Connection closed by peer"), waits for torchrun to stop it rather than add a traceback."""
    root = tmp_path / "pictures"
    for split in ("train", "test"):
        for label, name in enumerate(("cat", "dog")):
            (root / split / name).mkdir(parents=True)
            for index in range(16):
                Image.fromarray(np.full((8, 8), 40 + 60 * label + index, np.uint8)).save(
                    root / split / name / f"{index}.png")
    (root / "train" / "dog" / "bad.png").write_bytes(b"not a picture")
    run_dir = tmp_path / "run"
    done = torchrun("train", "fashion", "data.source=folder", f"data.path={root}", "data.stream=true",
                    "data.workers=0", "data.batch_size=4", "trainer.device=cpu", "--out", run_dir)
    assert done.code != 0
    assert done.err.count("dlzoo: error:") == 1 and "bad.png" in done.err, done.err[-3000:]
    assert "closed by peer" not in done.err and "]: Traceback" not in done.err, done.err[-3000:]
    assert not run_dir.exists()


@pytest.mark.multiprocess
@pytest.mark.parametrize("recipe, settings", [
    # An MLP VAE draws 50 latents per image, in chunks of 20,000 // 50 = 400 images: of the 3 held-out batches
    # (400, 400, 200) the first process scores two, the other one.
    ("vae-digits", ["model.name=vae-mlp", "iw_samples=50", "data.batch_size=32"]),
    ("cgan-digits", ["data.eval_batch_size=300", "data.batch_size=16", "gan.n_critic=2", "grid_samples=1"]),
])
def test_noisy_held_out_metrics_do_not_depend_on_the_processes(cli, recipe, settings, tmp_path):
    """A generative evaluation draws noise (a VAE's importance samples, a GAN's fakes): each held-out batch has its
    own, so a torchrun run's test metrics equal `dlzoo eval` of its checkpoint in one process."""
    run_dir = tmp_path / "run"
    done = torchrun("train", recipe, "data.limit=96", "trainer.epochs=1", "trainer.device=cpu", *settings,
                    "--out", run_dir)
    assert done.code == 0, done.err[-3000:]
    trained = json.loads((run_dir / "summary.json").read_text())["metrics"]["test"]
    evaluated = cli("eval", run_dir, "--json", "--device", "cpu")
    assert evaluated.code == 0, evaluated.err
    single = json.loads(evaluated.out)["metrics"]["test"]
    assert trained.keys() == single.keys()
    for key in trained:
        assert single[key] == pytest.approx(trained[key], rel=1e-9), key  # the same draws, summed in another order


@pytest.mark.multiprocess
def test_a_text_classifier_trains_under_torchrun_and_scores_as_in_one_process(cli, tmp_path):
    """Length-sorted batches, each process its share (of unequal lengths), and the held-out texts sorted by length
    and shared out: every text scored once, so the test metrics equal `dlzoo eval` of the checkpoint in one
    process."""
    pytest.importorskip("jieba")
    folder = review_folder(tmp_path / "texts", 200)
    run_dir = tmp_path / "run"
    done = torchrun("train", "reviews", "data.source=text-lines", f"data.path={folder}", "data.batch_size=16",
                    "model.embedding_dim=16", "model.hidden=16", "model.word2vec=false", "baseline=false",
                    "trainer.epochs=1", "trainer.device=cpu", "--out", run_dir)
    assert done.code == 0, done.err[-3000:]
    trained = json.loads((run_dir / "summary.json").read_text())
    assert trained["world_size"] == 2
    evaluated = cli("eval", run_dir, "--json", "--device", "cpu")
    assert evaluated.code == 0, evaluated.err
    single = json.loads(evaluated.out)["metrics"]["test"]
    for key in ("loss", "accuracy"):
        assert single[key] == pytest.approx(trained["metrics"]["test"][key], rel=1e-6), key


@pytest.mark.multiprocess
def test_a_segmenter_trains_under_torchrun_and_scores_as_in_one_process(cli, tmp_path):
    from test_masks import make_voc

    # 3 val pictures over 2 processes: one scores two, the other one; the confusion counts are summed.
    make_voc(tmp_path / "voc", train=4, val=3)
    done = torchrun("train", "fcn-voc", "model.pretrained=false", "model.args.stride=8", "data.crop=[16,24]",
                    "data.batch_size=2", "trainer.epochs=1", "trainer.device=cpu", f"data.path={tmp_path / 'voc'}",
                    "--out", tmp_path / "run")
    assert done.code == 0, done.err[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 1  # 4 pictures, 2 a batch, 2 processes
    evaluated = cli("eval", tmp_path / "run", "--json", "--device", "cpu")
    assert evaluated.code == 0, evaluated.err
    single = json.loads(evaluated.out)["metrics"]["test"]
    for metric in ("miou", "pixel_accuracy"):
        assert single[metric] == pytest.approx(summary["metrics"]["test"][metric], abs=1e-9)


@pytest.mark.multiprocess
def test_a_detector_trains_under_torchrun_and_its_map_is_gathered_as_in_one_process(cli, tmp_path):
    # 30 test canvases over 2 processes: torchmetrics gathers both halves' detections before computing mAP.
    done = torchrun("train", "digit-boxes", "data.limit=400", "data.batch_size=8", "data.scenes_per_epoch=32",
                    "data.eval_scenes=30", "data.eval_batch_size=10", "model.args.width=4", "trainer.epochs=1",
                    "trainer.device=cpu", "score_threshold=0.05", "--out", tmp_path / "run")
    assert done.code == 0, done.err[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 2  # 32 canvases, 8 a batch, 2 processes
    evaluated = cli("eval", tmp_path / "run", "--json", "--device", "cpu")
    assert evaluated.code == 0, evaluated.err
    single = json.loads(evaluated.out)["metrics"]["test"]
    assert summary["metrics"]["test"]["map_50"] > 0  # low (2 steps) but not 0: the comparison below can fail
    for metric in ("map", "map_50", "loss"):
        assert single[metric] == pytest.approx(summary["metrics"]["test"][metric], rel=1e-4, abs=1e-7)
