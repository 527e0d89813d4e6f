"""Where a result came from: device, library versions and the git commit of the code that produced it."""

from __future__ import annotations

import contextlib
import platform
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import torch


@cache
def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        threads = torch.get_num_threads()
        return f"{cpu_name()}, {threads} thread{'s' if threads != 1 else ''}"
    return device.type


def git_commit() -> str | None:
    """The commit of the dlzoo source tree now, with '-dirty' if it has uncommitted changes; None outside git."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")


def versions() -> dict[str, str]:
    from dlzoo import __version__

    found = {"python": platform.python_version(), "dlzoo": __version__, "torch": torch.__version__}
    for name in ("torchvision", "numpy"):
        with contextlib.suppress(ImportError):
            found[name] = __import__(name).__version__
    return found


def environment(device: torch.device) -> dict[str, Any]:
    return {"device": device.type, "device_name": device_description(device), "versions": versions(),
            "git_commit": git_commit()}
