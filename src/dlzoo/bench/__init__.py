"""Benchmarks behind `dlzoo bench NAME` and `make bench`: each measures recipes on this machine and returns
JSON-able results, most of them against a baseline run in the same process (a textbook loop, a reference model);
`step-profile` and `reader` measure one side only. Speed is measured here, never asserted in tests."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from functools import cache
from typing import Any

from dlzoo.errors import unknown_name

Benchmark = Callable[..., dict[str, Any]]
_BENCHMARKS: dict[str, tuple[Benchmark, str]] = {}
_NEEDS_GPU: set[str] = set()


def benchmark(name: str, summary: str, needs_gpu: bool = False):
    """Register a benchmark; `needs_gpu`: its targets are for a GPU and a CPU run would take hours, so
    `dlzoo bench all` skips it on machines without one (it can still be named and run with smaller options)."""
    def decorate(function: Benchmark) -> Benchmark:
        _BENCHMARKS[name] = (function, summary)
        if needs_gpu:
            _NEEDS_GPU.add(name)
        return function

    return decorate


def needs_gpu(name: str) -> bool:
    _discover()
    return name in _NEEDS_GPU


@cache
def _discover() -> None:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


def get_benchmark(name: str) -> Benchmark:
    _discover()
    if name not in _BENCHMARKS:
        raise unknown_name("benchmark", name, _BENCHMARKS)
    return _BENCHMARKS[name][0]


def list_benchmarks() -> dict[str, str]:
    _discover()
    return {name: summary for name, (_, summary) in sorted(_BENCHMARKS.items())}
