"""`dlzoo bench NAME|all [--out FILE]`: run benchmarks and print their results as JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dlzoo.cli import command


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", default="list", help="benchmark name, 'all', or 'list' (default)")
    parser.add_argument("--out", metavar="FILE", help="also write the JSON results to FILE")


@command("bench", "measure recipes against baselines on this machine; prints JSON", _arguments)
def bench(args: argparse.Namespace) -> None:
    from dlzoo.bench import get_benchmark, list_benchmarks

    available = list_benchmarks()
    if args.name == "list":
        for name, summary in available.items():
            print(f"{name:12s} {summary}")
        return
    names = list(available) if args.name == "all" else [args.name]
    functions = {name: get_benchmark(name) for name in names}  # unknown names fail before any work
    results = {}
    for name, function in functions.items():
        print(f"running benchmark {name} ...", file=sys.stderr, flush=True)
        results[name] = function()
        print(json.dumps(results[name], indent=2), flush=True)
    if args.out:
        path = Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)
