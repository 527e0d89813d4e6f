"""`dlzoo bench NAME|all [KEY=VALUE...] [--out FILE]`: run benchmarks and print their results as JSON.

KEY=VALUE options become keyword arguments of the benchmark function, converted to their annotated types (a
benchmark's size, e.g. `dlzoo bench classic models=lenet epochs=2`); unknown keys and bad values are user errors."""

from __future__ import annotations

import argparse
import inspect
import sys
import typing

from dlzoo.cli import check_device_exists, command
from dlzoo.errors import UserError
from dlzoo.files import check_destination, json_text, write_text_whole


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", default="list", help="benchmark name, 'all', or 'list' (default)")
    parser.add_argument("options", nargs="*", metavar="KEY=VALUE",
                        help="options of one benchmark, e.g. `dlzoo bench classic models=lenet,resnet18 epochs=2`")
    parser.add_argument("--out", metavar="FILE", help="also write the JSON results to FILE")


def _typed_options(name: str, function, items: list[str]) -> dict[str, typing.Any]:
    """KEY=VALUE options converted to the types of the benchmark function's keyword arguments."""
    from dlzoo.config import coerce, parse_overrides

    hints = typing.get_type_hints(function)
    known = list(inspect.signature(function).parameters)
    options = {}
    for key, text in parse_overrides(items):
        if key not in known:
            raise UserError(f"benchmark {name} has no option '{key}'; it takes: {', '.join(known) or 'none'}")
        options[key] = coerce(text, hints.get(key, str), key)
    check_device_exists(options.get("device", "auto"), option="device=")
    return options


def _defaults(function: typing.Callable[..., typing.Any]) -> str:
    """A benchmark's KEY=VALUE options with their defaults, as `dlzoo bench list` shows them."""
    def shown(value: object) -> str:
        return "none" if value is None else str(value).lower() if isinstance(value, bool) else str(value)

    parameters = inspect.signature(function).parameters.values()
    return " ".join(f"{p.name}={shown(p.default)}" for p in parameters) or "none"


@command("bench", "measure recipes against baselines on this machine; prints JSON", _arguments)
def bench(args: argparse.Namespace) -> None:
    import torch

    from dlzoo.bench import get_benchmark, list_benchmarks, needs_gpu
    from dlzoo.runs import check_not_a_run_file

    available = list_benchmarks()
    if args.name == "list":
        if args.options or args.out:
            raise UserError("`dlzoo bench list` takes no KEY=VALUE or --out; name a benchmark to run it with them")
        width = max(map(len, available))
        for name, summary in available.items():
            print(f"{name:{width}s}  {summary}")
            print(f"{'':{width}s}    options (defaults): {_defaults(get_benchmark(name))}")
        return
    # Before hours of measuring; never over a run's own file (its summary.json, its config.yaml)
    out = check_not_a_run_file(check_destination(args.out, "bench.json")) if args.out else None
    names = list(available) if args.name == "all" else [args.name]
    if args.options and args.name == "all":
        raise UserError("KEY=VALUE options apply to one benchmark; name it instead of 'all'")
    functions = {name: get_benchmark(name) for name in names}  # unknown names fail before any work
    options = _typed_options(names[0], functions[names[0]], args.options) if args.options else {}
    results = {}
    for name, function in functions.items():
        if len(functions) > 1 and needs_gpu(name) and not torch.cuda.is_available():
            print(f"skipping benchmark {name}: it needs a GPU and this machine has none", file=sys.stderr, flush=True)
            results[name] = {"benchmark": name, "skipped": "needs a GPU; none on this machine"}
            continue
        if len(functions) > 1:  # a single benchmark's own errors stay the one line on stderr
            print(f"running benchmark {name} ...", file=sys.stderr, flush=True)
        results[name] = function(**options)
        print(json_text(results[name], indent=2), flush=True)
    if out is not None:
        write_text_whole(out, json_text(results, indent=2) + "\n")
