"""A run killed (SIGKILL, a real process) after its second epoch, then resumed, ends bit-identical to one done
in one go, and logs the same curves; resuming a finished run leaves it as it is."""

import json
import os
import signal
import subprocess
import sys
import time

import torch
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import ROOT, run_subprocess

# 600 digits in 9 batches an epoch (the shared tiny run's, in batches of 64), 5 epochs, in 2 threads.
ARGS = ["train", "digits", "data.limit=600", "data.batch_size=64", "optim.lr=0.03", "trainer.epochs=5",
        "trainer.device=cpu", "trainer.threads=2", "trainer.keep_checkpoints=5"]


def final_weights(run_dir):
    return load_file(str(run_dir / "checkpoints" / "epoch-0005" / "model.safetensors"))


def logged_steps(run_dir, tag="test/accuracy"):
    """The steps TensorBoard shows for `tag` (after its purge of what a resumed run logs again)."""
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    return [scalar.step for scalar in events.Scalars(tag)]


def test_killed_and_resumed_run_is_bit_identical(cli, tmp_path):
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    done = run_subprocess(*ARGS, "--out", whole)
    assert done.code == 0, done.err

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "dlzoo", *ARGS, "--out", str(broken)], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while not (broken / "checkpoints" / "epoch-0002").exists():
        assert process.poll() is None, process.stderr.read().decode()
        assert time.time() < deadline
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_epochs = sorted(p.name for p in (broken / "checkpoints").iterdir())
    assert "epoch-0005" not in done_epochs, "the run finished before it could be killed"

    resumed = run_subprocess("train", "--resume", broken)
    assert resumed.code == 0, resumed.err
    assert "resumed from" in resumed.out

    a, b = final_weights(whole), final_weights(broken)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key

    def evaluations(run_dir):
        entries = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        return [(e["epoch"], e["split"], e["metrics"]) for e in entries]

    assert evaluations(whole) == evaluations(broken)
    summary_a = json.loads((whole / "summary.json").read_text())
    summary_b = json.loads((broken / "summary.json").read_text())
    assert summary_a["metrics"] == summary_b["metrics"]
    assert summary_a["steps"] == summary_b["steps"]
    assert logged_steps(whole) == logged_steps(broken) and len(logged_steps(whole)) == 5

    # These resumes read the run from its files alone, as the one above: in this process, without another start.
    finished = (whole / "summary.json").read_bytes()
    again = cli("train", "--resume", whole)  # finished: nothing to do, its summary left as it is
    assert again.code == 0 and "has trained all its 5 epochs: nothing to continue" in again.out, again.err
    assert (whole / "summary.json").read_bytes() == finished
    (whole / "summary.json").unlink()  # as a kill after the last checkpoint, before the summary, leaves it
    again = cli("train", "--resume", whole)  # evaluated again, the summary written
    assert again.code == 0, again.err
    assert json.loads((whole / "summary.json").read_text())["metrics"] == summary_a["metrics"]
