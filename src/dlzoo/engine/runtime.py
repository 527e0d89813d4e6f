"""Where and how a run executes: device, numeric precision, seeds and the torchrun process group.

torchrun is detected from its environment variables (RANK, WORLD_SIZE, LOCAL_RANK), as nanoGPT does: the same
command runs on a laptop CPU or, under `torchrun --nproc_per_node N`, as N data-parallel processes.
"""

from __future__ import annotations

import contextlib
import os
import random
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.distributed as dist

from dlzoo.config import TrainerConfig
from dlzoo.errors import UserError


def pick_device(requested: str) -> torch.device:
    """auto: cuda, then mps, then cpu. An explicit device that is not there is a user error."""
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise UserError("trainer.device=cuda but no CUDA device is available here; use trainer.device=auto or cpu")
    if requested == "mps" and not torch.backends.mps.is_available():
        raise UserError("trainer.device=mps but MPS is not available here; use trainer.device=auto or cpu")
    if requested == "cuda":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    try:  # from Python (`load_for_inference(run, device=...)`) any string comes; the config allows only the above
        device = torch.device(requested)
    except (RuntimeError, TypeError):
        raise UserError(f"unknown device {requested!r}: use auto, cpu, cuda or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():  # "cuda:1"
        raise UserError(f"device {requested} but no CUDA device is available here; use auto or cpu")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class Runtime:
    device: torch.device
    autocast_dtype: torch.dtype | None
    rank: int = 0
    world_size: int = 1
    seed: int = 0
    # torch's process-wide settings as they were before `create` changed them (`_process_settings`), put back by
    # `shutdown`: a run started later in the process (from Python, a benchmark's next one) starts from those, not
    # from this run's trainer.threads or its GPU's TF32, nor does the notebook's own code after it.
    settings_before: tuple[int, bool, bool, bool, bool, bool] | None = field(default=None, repr=False)
    random_before: RandomStates | None = field(default=None, repr=False)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def precision(self) -> str:
        """What the forward passes compute in: the autocast dtype (bf16, fp16), else fp32."""
        return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(self.autocast_dtype, "fp32")

    @classmethod
    def create(cls, trainer: TrainerConfig, *, init_process_group: bool = True) -> Runtime:
        """Set up device, threads, determinism, seeds and (under torchrun) the process group."""
        world_size = int(os.environ.get("WORLD_SIZE", 1))
        rank = int(os.environ.get("RANK", 0))
        device = pick_device(trainer.device)
        # Checked before any process-wide setting changes: a run refused here has no `shutdown` to put them back.
        autocast_dtype = _autocast_dtype(trainer.precision, device)
        if world_size > 1 and init_process_group and not dist.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            if device.type == "cuda":
                torch.cuda.set_device(device)
            dist.init_process_group(backend=backend)
        before, random_before = _process_settings(), RandomStates.now()
        if trainer.threads is not None:
            torch.set_num_threads(trainer.threads)
        if trainer.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        elif device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        # Each rank draws its own augmentation and dropout noise; the data order is seeded separately and is shared.
        seed_everything(trainer.seed + rank)
        return cls(device=device, autocast_dtype=autocast_dtype, rank=rank,
                   world_size=world_size, seed=trainer.seed, settings_before=before, random_before=random_before)

    @classmethod
    def for_inference(cls, device: str = "auto") -> Runtime:
        return cls(device=pick_device(device), autocast_dtype=None)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    # --- collective helpers; no-ops in a single process ---
    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.distributed:
            tensor = tensor.clone()
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def all_reduce_mean(self, tensor: torch.Tensor) -> torch.Tensor:
        return self.all_reduce_sum(tensor) / self.world_size

    def broadcast_object(self, value: object) -> object:
        if not self.distributed:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather_object(self, value: object) -> list[object]:
        """Every rank's `value`, in rank order, on every rank ([value] in a single process)."""
        if not self.distributed:
            return [value]
        values: list[object] = [None] * self.world_size
        dist.all_gather_object(values, value)
        return values

    def broadcast_buffers(self, module: torch.nn.Module) -> None:
        """Copy rank 0's buffers (e.g. BatchNorm running statistics) to every rank."""
        if self.distributed:
            for buffer in module.buffers():
                dist.broadcast(buffer, src=0)

    def shutdown(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()
        if self.settings_before is not None:
            threads, deterministic, warn_only, benchmark, matmul_tf32, cudnn_tf32 = self.settings_before
            torch.set_num_threads(threads)
            torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
            torch.backends.cudnn.benchmark = benchmark
            torch.backends.cuda.matmul.allow_tf32 = matmul_tf32
            torch.backends.cudnn.allow_tf32 = cudnn_tf32
        if self.random_before is not None:
            self.random_before.restore()


@dataclass(frozen=True)
class RandomStates:
    """The global random generators' states (Python's, numpy's, torch's on the CPU and on every GPU in use), which
    training reseeds from `trainer.seed`: put back when it ends, so that `dlzoo.train(...)` leaves a program's own
    random sequence where it was."""

    python: tuple
    numpy: tuple
    torch_cpu: torch.Tensor
    torch_cuda: list[torch.Tensor] | None

    @classmethod
    def now(cls) -> RandomStates:
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
        return cls(random.getstate(), np.random.get_state(), torch.get_rng_state(), cuda)

    def restore(self) -> None:
        random.setstate(self.python)
        np.random.set_state(self.numpy)
        torch.set_rng_state(self.torch_cpu)
        if self.torch_cuda is not None:
            torch.cuda.set_rng_state_all(self.torch_cuda)


def _process_settings() -> tuple[int, bool, bool, bool, bool, bool]:
    """The settings of torch's that `Runtime.create` changes for the whole process: threads, deterministic
    algorithms (and their warn_only), cuDNN's autotuner, TF32 in matmuls and in convolutions. A GPU run left TF32
    on, so a `trainer.deterministic=true` run after it in the same process still multiplied in TF32."""
    return (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(), torch.backends.cudnn.benchmark,
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bf16 arithmetic in hardware (AVX512-BF16 or AMX tiles), as torch detects it."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch.cpu's own (underscored) probes
    return any(getattr(torch.cpu, check, lambda: False)() for check in checks)


def _autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    if precision == "fp32":
        return None
    if precision == "auto-bf16" and device.type == "cpu":
        return torch.bfloat16 if cpu_has_native_bf16() else None
    if precision in ("auto", "auto-bf16"):
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return None
    if precision == "fp16" and device.type == "cpu":
        raise UserError("trainer.precision=fp16 needs a GPU; use bf16 or fp32 on the CPU")
    return torch.bfloat16 if precision == "bf16" else torch.float16
