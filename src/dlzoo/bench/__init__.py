"""Benchmarks behind `dlzoo bench NAME` and `make bench`: each measures a recipe against a baseline run in the same
process on the same machine and returns JSON-able results. Speed is measured here, never asserted in tests."""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Callable
from functools import cache
from typing import Any

from dlzoo.errors import UserError

Benchmark = Callable[..., dict[str, Any]]
_BENCHMARKS: dict[str, tuple[Benchmark, str]] = {}


def benchmark(name: str, summary: str):
    def decorate(function: Benchmark) -> Benchmark:
        _BENCHMARKS[name] = (function, summary)
        return function

    return decorate


@cache
def _discover() -> None:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


def get_benchmark(name: str) -> Benchmark:
    _discover()
    if name not in _BENCHMARKS:
        close = difflib.get_close_matches(name, _BENCHMARKS, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else f"; known: {', '.join(sorted(_BENCHMARKS))}"
        raise UserError(f"unknown benchmark '{name}'{hint}")
    return _BENCHMARKS[name][0]


def list_benchmarks() -> dict[str, str]:
    _discover()
    return {name: summary for name, (_, summary) in sorted(_BENCHMARKS.items())}
