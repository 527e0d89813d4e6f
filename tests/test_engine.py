"""Engine pieces on their own: the tensor loader, schedules, checkpoints written atomically."""

import copy
from inspect import signature

import pytest
import torch
from torch import nn

from dlzoo.config import OptimConfig
from dlzoo.data.augment import random_affine, random_flip, random_translate, translate
from dlzoo.data.tensors import TensorLoader
from dlzoo.engine import checkpoint
from dlzoo.engine.optim import build_optimizer, build_scheduler, param_groups


def test_tensor_loader_order_depends_only_on_seed_and_epoch():
    x = torch.arange(100)
    a = TensorLoader(x, batch_size=10, shuffle=True, seed=3)
    b = TensorLoader(x, batch_size=10, shuffle=True, seed=3)
    a.set_epoch(2)
    b.set_epoch(2)
    assert [t[0].tolist() for t in a] == [t[0].tolist() for t in b]
    b.set_epoch(3)
    assert [t[0].tolist() for t in a] != [t[0].tolist() for t in b]


def test_tensor_loader_ranks_partition_the_data():
    x = torch.arange(103)
    seen = []
    for rank in range(2):
        loader = TensorLoader(x, batch_size=8, shuffle=True, seed=0, rank=rank, world_size=2)
        loader.set_epoch(1)
        seen.append(torch.cat([batch[0] for batch in loader]))
    assert len(seen[0]) == len(seen[1]) == 51  # equal steps on every rank
    assert not set(seen[0].tolist()) & set(seen[1].tolist())
    eval_shards = [torch.cat([b[0] for b in TensorLoader(x, batch_size=8, rank=r, world_size=2)]) for r in range(2)]
    assert sorted(torch.cat(eval_shards).tolist()) == list(range(103))  # evaluation covers everything once


def test_schedules_reach_their_ends():
    model = nn.Linear(2, 2)
    for schedule in ("onecycle", "cosine", "step", "constant"):
        config = OptimConfig(lr=0.1, schedule=schedule, step_epochs=1, gamma=0.5, warmup=0.2)
        optimizer = build_optimizer(config, [model])
        scheduler = build_scheduler(config, optimizer, epochs=2, steps_per_epoch=10)
        lrs = []
        for _ in range(20):
            lrs.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        assert all(lr >= 0 for lr in lrs), schedule
        assert max(lrs) <= 0.1 + 1e-9
        if schedule in ("onecycle", "cosine"):
            assert lrs[-1] < 0.02 and lrs[0] < lrs[4]
        if schedule == "step":
            assert lrs[0] == 0.1 and lrs[-1] == 0.05


def test_onecycle_builds_and_runs_for_any_short_run():
    # A warm-up of exactly one step (4 batches + 1 at warmup=0.2) once raised ZeroDivisionError inside OneCycleLR.
    for steps in range(1, 12):
        for warmup in (0.0, 0.1, 0.2, 0.25, 0.5, 1.0):
            config = OptimConfig(lr=0.1, schedule="onecycle", warmup=warmup)
            optimizer = build_optimizer(config, [nn.Linear(2, 2)])
            scheduler = build_scheduler(config, optimizer, epochs=1, steps_per_epoch=steps)
            for _ in range(steps):
                optimizer.step()
                scheduler.step()
            assert 0 < optimizer.param_groups[0]["lr"] <= 0.1, (steps, warmup)


@pytest.mark.parametrize("name,setting,expected", [("sgd", {"momentum": 0.0}, (0.0, 0.0)),
                                                    ("sgd", {"momentum": 0.9}, (0.85, 0.95)),
                                                    ("adam", {"beta1": 0.5}, (0.45, 0.55))])
def test_onecycle_cycles_the_configured_momentum(name, setting, expected):
    # OneCycleLR's own range (0.85-0.95) once replaced whatever momentum or beta1 the config asked for, 0 included.
    config = OptimConfig(name=name, lr=0.1, schedule="onecycle", **setting)
    optimizer = build_optimizer(config, [nn.Linear(2, 2)])
    scheduler = build_scheduler(config, optimizer, epochs=1, steps_per_epoch=20)
    key = "momentum" if name == "sgd" else "betas"
    seen = []
    for _ in range(20):
        value = optimizer.param_groups[0][key]
        seen.append(value if name == "sgd" else value[0])
        optimizer.step()
        scheduler.step()
    # The lowest point falls between two steps: within a step's change of the bottom of the cycle.
    assert min(seen) == pytest.approx(expected[0], abs=0.01) and max(seen) == pytest.approx(expected[1])


def test_no_weight_decay_on_biases_and_norms():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    optimizer = build_optimizer(OptimConfig(weight_decay=0.1), [model])
    decays = {group["weight_decay"]: len(group["params"]) for group in optimizer.param_groups}
    assert decays == {0.1: 1, 0.0: 3}
    # A class-conditional norm's per-class scales and shifts are 2-d tables, and still a norm's parameters.
    from dlzoo.models import create
    from dlzoo.models.generative import ConditionalBatchNorm2d

    generator = create("cgan-generator")
    optimizer = build_optimizer(OptimConfig(weight_decay=0.1), [generator])
    exempt = {id(p) for group in optimizer.param_groups if group["weight_decay"] == 0 for p in group["params"]}
    norms = [p for m in generator.modules() if isinstance(m, ConditionalBatchNorm2d) for p in m.parameters()]
    assert len(norms) == 4 and all(id(p) in exempt for p in norms)
    assert id(generator.embed.weight) not in exempt  # the label embedding is a weight like any other


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_optimizers_use_fused_updates_that_match_the_plain_ones(name):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2))
    plain, initial = copy.deepcopy(model), copy.deepcopy(model)
    config = OptimConfig(name=name, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)
    fused = build_optimizer(config, [model])
    assert fused.defaults["fused"]
    settings = {key: value for key, value in fused.defaults.items() if key in signature(type(fused)).parameters}
    reference = type(fused)(param_groups([plain], 0.01), **{**settings, "fused": False, "foreach": False})
    for _ in range(3):
        inputs = torch.randn(8, 4)
        for net, optimizer in ((model, fused), (plain, reference)):
            optimizer.zero_grad()
            net(inputs).square().mean().backward()
            optimizer.step()
    for ours, theirs in zip(model.parameters(), plain.parameters(), strict=True):
        assert torch.allclose(ours, theirs, atol=1e-5)
    assert not torch.allclose(model[0].weight, initial[0].weight, atol=1e-3)  # the steps did move the weights


def test_checkpoint_save_is_atomic_and_keeps_the_last(tmp_path):
    model = {"net": nn.Linear(3, 2)}
    for epoch in (1, 2, 3):
        checkpoint.save(tmp_path, epoch, model, {"epoch": epoch}, {"epoch": epoch}, keep=2)
    assert [p.name for p in checkpoint.list_checkpoints(tmp_path)] == ["epoch-0002", "epoch-0003"]
    # A save killed half-way leaves only a .tmp folder, which is never taken for a checkpoint.
    partial = tmp_path / "checkpoints" / "epoch-0004.tmp"
    partial.mkdir()
    (partial / checkpoint.WEIGHTS).write_bytes(b"half")
    assert checkpoint.latest(tmp_path).name == "epoch-0003"
    assert checkpoint.read_metadata(checkpoint.latest(tmp_path) / checkpoint.WEIGHTS) == {"epoch": 3}
    state = checkpoint.read_training_state(checkpoint.latest(tmp_path))
    assert state["epoch"] == 3 and state["format"] == checkpoint.STATE_FORMAT
    # Killed while deleting a rotated checkpoint: what is left is set aside as .old, not an epoch folder that
    # lacks its weights (never rotated away); the next save sweeps it, and the killed save's .tmp.
    (tmp_path / "checkpoints" / "epoch-0002").rename(tmp_path / "checkpoints" / "epoch-0002.old")
    checkpoint.save(tmp_path, 5, model, {"epoch": 5}, {"epoch": 5}, keep=2)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["epoch-0003", "epoch-0005"]


def test_a_checkpoint_the_disk_cannot_take_is_an_os_error_and_leaves_no_half_folder(tmp_path):
    """A full disk makes safetensors and torch raise types of their own (a traceback from the CLI), and the half
    written epoch-NNNN.tmp stayed, taking space on a full disk. A file size limit fails the writes as the disk
    would: the save is an OSError naming the checkpoint, and only the complete checkpoint before it is left."""
    import errno
    import resource
    import signal

    models = {"net": nn.Linear(100, 400)}  # 160 kB of weights, over the limit below
    checkpoint.save(tmp_path, 1, models, {"epoch": 1}, {"epoch": 1})
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails, not kills
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, hard))
    try:
        with pytest.raises(OSError) as raised:
            checkpoint.save(tmp_path, 2, models, {"epoch": 2}, {"epoch": 2})
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert raised.value.errno == errno.EFBIG and "epoch-0002" in raised.value.filename
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["epoch-0001"]


def test_unwrap_strips_compile_and_ddp_prefixes():
    inner = nn.Linear(2, 2)
    wrapper = nn.Module()
    wrapper._orig_mod = inner  # what torch.compile's OptimizedModule holds
    assert checkpoint.unwrap(wrapper) is inner
    weights = checkpoint.flat_weights({"net": wrapper})
    assert set(weights) == {"net.weight", "net.bias"}


def test_rng_state_round_trip(tmp_path):
    import random

    import numpy as np

    np.random.seed(0)
    np.random.randn()  # numpy draws normals in pairs: the second now waits in the state
    torch.save(checkpoint.rng_state(), tmp_path / "state.pt")  # as checkpoints hold it, and read it back
    state = torch.load(tmp_path / "state.pt", weights_only=True)
    first = (torch.rand(3), random.random(), np.random.rand(), np.random.randn())
    checkpoint.set_rng_state(state)
    again = (torch.rand(3), random.random(), np.random.rand(), np.random.randn())
    assert torch.equal(first[0], again[0]) and first[1:] == again[1:]


def test_batched_augmentations_keep_shape_and_range():
    images = torch.rand(16, 1, 28, 28)
    for out in (random_affine(images, 10, 0.1, (0.9, 1.1), 5), random_flip(images), random_translate(images, 2)):
        assert out.shape == images.shape and out.min() >= 0 and out.max() <= 1
    shifted = random_translate(images, 0)
    assert torch.equal(shifted, images)
    flipped_all = random_flip(images, p=1.0)
    assert torch.equal(flipped_all, images.flip(-1))


def test_translate_shifts_with_zero_fill():
    images = torch.arange(1.0, 17.0).view(1, 1, 4, 4)
    right_down = translate(images, 1, 2)
    assert torch.equal(right_down[..., 2:, 1:], images[..., :2, :3])  # pixel (y, x) moved to (y + 2, x + 1)
    assert right_down[..., :2, :].abs().sum() == 0 and right_down[..., :, :1].abs().sum() == 0
    left_up = translate(images, -1, -1)
    assert torch.equal(left_up[..., :3, :3], images[..., 1:, 1:]) and left_up[..., 3, :].abs().sum() == 0
    assert torch.equal(translate(images, 0, 0), images)


def test_a_metric_per_fold_shares_one_name_on_the_console():
    from dlzoo.engine.reporting import format_metrics
    line = format_metrics({"loss": 0.5, "fold1_log_rmse": 0.21, "fold2_log_rmse": 0.18, "fold3_log_rmse": 0.17,
                           "fold5_log_rmse": 0.2, "top5_accuracy": 0.9, "lr": 1e-3, "count": 3})
    assert line == ("loss 0.5000  fold1-3_log_rmse 0.2100 0.1800 0.1700  fold5_log_rmse 0.2000  "
                    "top5_accuracy 0.9000  lr 0.0010  count 3")


def test_damaged_lines_of_metrics_jsonl_are_passed_over(tmp_path):
    from dlzoo.engine.reporting import METRICS, read_metrics

    (tmp_path / METRICS).write_bytes(b'{"epoch": 1, "split": "test"}\n{"epoch": 2, "spl'  # cut by a kill
                                     b'\n\xff\xfe\x00 not text\n42\n{"epoch": 2, "split": "test"}\n')
    assert read_metrics(tmp_path) == [{"epoch": 1, "split": "test"}, {"epoch": 2, "split": "test"}]


def test_a_checkpoint_reads_from_a_folder_whose_name_is_not_utf8(tmp_path):
    """Linux folder names are bytes; safetensors takes paths as UTF-8 text and refused such a run's weights."""
    import json
    import os

    from safetensors.torch import save

    from dlzoo.engine.checkpoint import read_metadata, read_weights
    from dlzoo.errors import UserError

    folder = tmp_path / os.fsdecode(b"run-\xff")  # a lone surrogate in Python's str
    folder.mkdir()
    weights = folder / "model.safetensors"
    weights.write_bytes(save({"net.w": torch.ones(2)}, metadata={"dlzoo": json.dumps({"meta": {"a": 1}})}))
    assert read_metadata(weights) == {"meta": {"a": 1}}
    assert torch.equal(read_weights(weights)["net.w"], torch.ones(2))
    weights.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(UserError, match="cannot read checkpoint"):
        read_metadata(weights)
