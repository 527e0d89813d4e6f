"""DDP through torchrun with 2 gloo processes on the CPU."""

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, run_subprocess


@pytest.mark.multiprocess
def test_torchrun_two_processes(tmp_path):
    run_dir = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "dlzoo",
         "train", "digits", "data.limit=800", "trainer.epochs=2", "trainer.device=cpu", "--out", str(run_dir)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    # Only rank 0 logs: each epoch line appears once.
    assert done.stdout.count("epoch 1/2 ") == 1, done.stdout
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["world_size"] == 2
    entries = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    first = next(e for e in entries if e["split"] == "train")
    # 800 samples over 2 ranks = 400 each, batches of 128 with the last partial batch dropped: 3 steps an epoch.
    assert first["step"] == 3
    # Test metrics are reduced over the ranks' shards: they equal a single-process evaluation of the same weights.
    evaluated = run_subprocess("eval", run_dir, "--json", "--device", "cpu")
    assert evaluated.code == 0, evaluated.err
    single = json.loads(evaluated.out)["metrics"]["test"]
    assert single["accuracy"] == pytest.approx(summary["metrics"]["test"]["accuracy"], abs=1e-9)
    assert single["loss"] == pytest.approx(summary["metrics"]["test"]["loss"], rel=1e-4)
