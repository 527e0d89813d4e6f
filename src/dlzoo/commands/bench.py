"""`dlzoo bench NAME|all [KEY=VALUE...] [--out FILE]`: run benchmarks and print their results as JSON: one
benchmark's result, or for `all` one document {name: result} (`--out` writes {name: result} in both cases).

KEY=VALUE options become keyword arguments of the benchmark function, converted to their annotated types (a
benchmark's size, e.g. `dlzoo bench classic models=lenet epochs=2`); unknown keys and bad values are user errors."""

from __future__ import annotations

import argparse
import inspect
import sys
import typing
from pathlib import Path

from dlzoo.cli import check_device_exists, command
from dlzoo.errors import UserError, one_line
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
        if isinstance(value, (list, tuple)):  # as it is given on the command line
            return ",".join(map(str, value))
        return "none" if value is None else str(value).lower() if isinstance(value, bool) else str(value)

    parameters = inspect.signature(function).parameters.values()
    return " ".join(f"{p.name}={shown(p.default)}" for p in parameters) or "none"


@command("bench", "measure recipes against baselines on this machine; prints JSON", _arguments)
def bench(args: argparse.Namespace) -> int:
    from dlzoo.bench import get_benchmark, list_benchmarks
    from dlzoo.runs import check_not_a_run_file

    available = list_benchmarks()
    if args.name == "list":
        if args.options or args.out:
            raise UserError("`dlzoo bench list` takes no KEY=VALUE or --out; name a benchmark to run it with them")
        width = max(map(len, available))
        for name, summary in available.items():
            print(f"{name:{width}s}  {summary}")
            print(f"{'':{width}s}    options (defaults): {_defaults(get_benchmark(name))}")
        return 0
    # Before hours of measuring; never over a run's own file (its summary.json, its config.yaml)
    out = check_not_a_run_file(check_destination(args.out, "bench.json")) if args.out else None
    if args.name == "all":
        if args.options:
            raise UserError("KEY=VALUE options apply to one benchmark; name it instead of 'all'")
        results = run_all({name: get_benchmark(name) for name in available}, out)
        print(json_text(results, indent=2), flush=True)
        failed = [name for name, result in results.items() if "failed" in result]
        if failed:
            print(f"dlzoo: error: {len(failed)} of {len(results)} benchmarks failed: {', '.join(failed)}",
                  file=sys.stderr)
        return 1 if failed else 0
    function = get_benchmark(args.name)
    result = function(**_typed_options(args.name, function, args.options))  # its mistakes: one line, status 2
    print(json_text(result, indent=2), flush=True)
    if out is not None:
        write_text_whole(out, json_text({args.name: result}, indent=2) + "\n")
    return 0


def run_all(functions: dict[str, typing.Callable[..., dict[str, typing.Any]]],
            out: Path | None) -> dict[str, dict[str, typing.Any]]:
    """`dlzoo bench all`: every benchmark at its defaults, in turn, as {name: result}. Each that ends is told in a
    line on stderr, with its seconds, while stdout waits for the one JSON document (hours, without --out); one that
    fails is recorded as `{"benchmark": NAME, "failed": REASON}` while the others still run; `out` is written again
    after each benchmark, so that it keeps what finished through a later failure or a kill."""
    import time

    import torch

    from dlzoo.bench import needs_gpu

    results: dict[str, dict[str, typing.Any]] = {}
    for name, function in functions.items():
        if needs_gpu(name) and not torch.cuda.is_available():
            print(f"skipping benchmark {name}: it needs a GPU and this machine has none", file=sys.stderr, flush=True)
            results[name] = {"benchmark": name, "skipped": "needs a GPU; none on this machine"}
        else:
            print(f"running benchmark {name} ...", file=sys.stderr, flush=True)
            start = time.perf_counter()
            try:
                results[name] = function()
                print(f"benchmark {name}: ok, {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
            except Exception as error:  # a mistake (data not found) or a bug: said, and the next benchmark runs
                reason = one_line(str(error) if isinstance(error, UserError) else f"{type(error).__name__}: {error}")
                print(f"dlzoo: benchmark {name} failed after {time.perf_counter() - start:.1f} s: {reason}",
                      file=sys.stderr, flush=True)
                results[name] = {"benchmark": name, "failed": reason}
        if out is not None:
            write_text_whole(out, json_text(results, indent=2) + "\n")
    return results
