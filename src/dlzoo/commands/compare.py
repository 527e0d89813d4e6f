"""`dlzoo compare RUN_DIR...`: finished runs side by side, as a markdown table and a plot of test accuracy against
training time.

Arguments may be run directories, folders holding runs (`runs/`), or globs the shell did not expand (`'runs/*'`).
Everything is read from each run's `summary.json` and `config.yaml`, so runs of any recipe and any machine compare.
"""

from __future__ import annotations

import argparse
import glob
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlzoo.cli import command
from dlzoo.errors import UserError
from dlzoo.files import check_destination, new_figure, save_figure, write_text_whole

SUMMARY, CONFIG = "summary.json", "config.yaml"
COLUMNS = ["run", "recipe", "model", "params", "resolution", "epochs", "data", "test accuracy", "train s",
           "samples/s", "device"]


@dataclass
class RunRow:
    run: str
    recipe: str
    model: str
    params: int
    resolution: int | None
    epochs: int
    data: str
    metric: str  # the run's main metric (accuracy for classifiers)
    value: float
    val_value: float | None  # the same on the run's validation split (`data.val_fraction`), when it has one
    train_seconds: float
    samples_per_s: float | None
    device: str

    def cells(self, with_val: bool = False) -> list[str]:
        score = lambda value: f"{value:.4f}" if self.metric == "accuracy" else f"{self.metric} {value:.4g}"
        val = ([score(self.val_value) if self.val_value is not None else "-"] if with_val else [])
        return [self.run, self.recipe, self.model, _count(self.params), f"{self.resolution} px" if self.resolution
                else "-", str(self.epochs), self.data, *val, score(self.value), f"{self.train_seconds:.1f}",
                f"{self.samples_per_s:,.0f}" if self.samples_per_s else "-", self.device]


def _count(n: int) -> str:
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f}{unit}"
    return str(n)


def find_runs(arguments: list[str]) -> dict[Path, bool]:
    """Run directories named, inside named folders, or matching globs, each with whether it was named; unfinished
    ones found by expansion are skipped with a note, named ones are an error."""
    found: list[tuple[Path, bool]] = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir() and (path / CONFIG).is_file():
            if not _has_summary(path):
                raise UserError(f"{path} has no {SUMMARY}: the run has not finished "
                                f"(continue it with dlzoo train --resume {path})")
            found.append((path, True))
            continue
        if path.is_dir():
            candidates, what = sorted(p for p in path.iterdir() if p.is_dir()), f"in {path}"
        elif any(char in argument for char in "*?["):
            candidates, what = sorted(Path(p) for p in glob.glob(argument)), f"matching {argument}"
        elif path.exists():
            raise UserError(f"{path} is not a run directory")
        else:
            raise UserError(f"run directory not found: {path}")
        runs = [p for p in candidates if (p / CONFIG).is_file()]
        if not runs:
            raise UserError(f"no dlzoo run directories {what}")
        for run in runs:
            if _has_summary(run):
                found.append((run, False))
            else:
                print(f"dlzoo compare: skipping {run}: unfinished (no {SUMMARY})", file=sys.stderr)
    # One row per run however often it is reached; notes and errors name it as the user first wrote it.
    first_spelling: dict[Path, Path] = {}
    unique: dict[Path, bool] = {}
    for run, named in found:
        run = first_spelling.setdefault(run.resolve(), run)
        unique[run] = unique.get(run, False) or named
    if not unique:
        raise UserError("none of the runs has finished")
    return unique


def _has_summary(run: Path) -> bool:
    """Whether `run` finished, as far as its folder tells: something is where its summary goes. What is there, a
    folder perhaps, is read_row's to judge: "has not finished, resume it" would send the user the wrong way."""
    summary = run / SUMMARY
    return summary.exists() or summary.is_symlink()


def read_rows(runs: dict[Path, bool]) -> list[RunRow]:
    """A row per run; one found by expansion whose files cannot be compared is skipped with a note (one broken run
    among many in runs/*), one named on the command line is the user's error."""
    rows = []
    for run, named in runs.items():
        try:
            rows.append(read_row(run))
        except UserError as error:
            if named:
                raise
            print(f"dlzoo compare: skipping {run}: {error}", file=sys.stderr)
    if not rows:
        raise UserError("none of the runs can be compared")
    return rows


def read_row(run_dir: Path) -> RunRow:
    from dlzoo.config import load_yaml
    from dlzoo.runs import read_summary

    summary, config = read_summary(run_dir / SUMMARY), load_yaml(run_dir / CONFIG)
    try:
        metrics = summary["metrics"]
        split = "test" if "test" in metrics else next(s for s in metrics if s != "train")
        metric = summary.get("main_metric", "accuracy")
        value = float(metrics[split][metric])
        val_value = float(metrics["val"][metric]) if "val" in metrics and split != "val" else None
        data = config.get("data", {})
        model = config.get("model", {})
        source = data.get("source") or "-"
        if data.get("path"):  # a folder or table of one's own: which one
            source += f" {Path(os.path.abspath(str(data['path']))).name}"
        if data.get("limit"):
            source += f" (first {data['limit']:,})"
        if data.get("val_fraction"):  # trained on fewer images than a run of the whole training set
            source += f" ({float(data['val_fraction']):.0%} held out)"
        name = str(summary["device_name"])
        device = name if summary.get("device") != "cpu" else f"CPU: {name}"
        if summary.get("precision"):  # runs from before dlzoo recorded it have none
            device += f", {summary['precision']}"
        samples_per_s = summary.get("samples_per_s")
        world = int(summary.get("world_size", 1))
        return RunRow(
            run=run_dir.resolve().name, recipe=str(summary.get("recipe") or config.get("recipe", "-")),
            model=str(model.get("name", "-")) if isinstance(model, dict) else "-",
            params=sum(int(n) for n in summary.get("parameters", {}).values()),
            resolution=data.get("resolution"), epochs=int(summary["epochs"]), data=source, metric=metric,
            value=value, val_value=val_value, train_seconds=float(summary["train_seconds"]),
            samples_per_s=None if samples_per_s is None else float(samples_per_s),
            device=f"{world} x {device}" if world > 1 else device,
        )
    except (KeyError, TypeError, ValueError, StopIteration, AttributeError) as error:
        raise UserError(f"{run_dir / SUMMARY} lacks what a comparison needs "
                        f"({type(error).__name__}: {error})") from None


def sort_rows(rows: list[RunRow], key: str) -> list[RunRow]:
    if key == "time":
        return sorted(rows, key=lambda r: r.train_seconds)
    if key == "name":
        return sorted(rows, key=lambda r: r.run)
    if key == "val":  # the validation accuracy, to choose settings by; runs without one below, in their order
        return sorted(rows, key=lambda r: _best_first(r, r.val_value))
    return sorted(rows, key=lambda r: _best_first(r, r.value))


def _best_first(row: RunRow, value: float | None) -> float:
    """Accuracy first, best on top; runs scored by other metrics, or NaN (a diverged run), keep their order below
    (NaN, compared, would leave the order to chance)."""
    return -value if row.metric == "accuracy" and value is not None and math.isfinite(value) else math.inf


def markdown_table(rows: list[RunRow]) -> str:
    """The table; a "val accuracy" column beside the test one when any run holds out a validation split."""
    escape = lambda cell: cell.replace("|", "\\|")
    with_val = any(row.val_value is not None for row in rows)
    at = COLUMNS.index("test accuracy")
    columns = [*COLUMNS[:at], "val accuracy", *COLUMNS[at:]] if with_val else COLUMNS
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(escape(cell) for cell in row.cells(with_val)) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def plot_accuracy_vs_time(rows: list[RunRow], out: Path) -> Path:
    """Test accuracy against training seconds (log scale), one labelled point per run, one marker per device."""
    points = [row for row in rows if row.metric == "accuracy" and math.isfinite(row.value)]  # NaN: no place on it
    if not points:
        raise UserError("no run is scored by a (finite) accuracy: nothing to plot")
    figure = new_figure(figsize=(7, 4.5))
    axis = figure.subplots()
    markers = "osD^vP*X"
    models = [row.model for row in points]
    # Points are named by their model, or by their run where several runs share a model.
    label = lambda row: row.model if row.model != "-" and models.count(row.model) == 1 else row.run
    for index, device in enumerate(dict.fromkeys(row.device for row in points)):
        mine = [row for row in points if row.device == device]
        axis.scatter([r.train_seconds for r in mine], [r.value for r in mine], marker=markers[index % len(markers)],
                     label=device, zorder=3)
    seconds = [row.train_seconds for row in points]
    if min(seconds) > 0 and max(seconds) / min(seconds) > 10:
        axis.set_xscale("log")
    axis.margins(x=0.12, y=0.08)  # room for the labels right of and above the outermost points
    axis.set_xlabel("training time (s)")
    axis.set_ylabel("test accuracy")
    axis.set_title("test accuracy vs training time")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    _label_points(axis, [(label(row), row.train_seconds, row.value) for row in points])
    return save_figure(figure, out, dpi=110)


# Where a point's label may go, in points from the point (and its alignment), in the order tried.
_LABEL_PLACES = [((5, 4), "left"), ((5, -11), "left"), ((-5, 4), "right"), ((-5, -11), "right"),
                 ((5, 14), "left"), ((5, -21), "left")]


def _label_points(axis: Any, labels: list[tuple[str, float, float]]) -> None:
    """Each point named beside it, in the first place that overlaps no point and no label already placed (runs
    that score alike in alike time would print their names over each other); the first place when all are taken."""
    from matplotlib.transforms import Bbox

    renderer = axis.figure.canvas.get_renderer()
    radius = 4  # pixels: about a marker's half width at the figure's dpi
    placed = [Bbox.from_extents(px - radius, py - radius, px + radius, py + radius)
              for px, py in axis.transData.transform([(x, y) for _, x, y in labels])]
    for text, x, y in sorted(labels, key=lambda item: -item[2]):  # from the top, as one reads
        for offset, align in _LABEL_PLACES:
            note = axis.annotate(text, (x, y), textcoords="offset points", xytext=offset, ha=align, fontsize=8)
            box = note.get_window_extent(renderer)
            if not any(box.overlaps(other) for other in placed):
                break
            note.remove()
        else:
            note = axis.annotate(text, (x, y), textcoords="offset points", xytext=_LABEL_PLACES[0][0], fontsize=8)
            box = note.get_window_extent(renderer)
        placed.append(box)


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories, folders of runs, or globs")
    parser.add_argument("--out", metavar="FILE.md", help="write the markdown table here (and the plot beside it)")
    parser.add_argument("--plot", metavar="FILE.png", help="write the plot here (default: --out with .png)")
    parser.add_argument("--sort", choices=["accuracy", "val", "time", "name"], default="accuracy",
                        help="rows by test accuracy (default), validation accuracy (runs with data.val_fraction), "
                             "training time or run name")


@command("compare", "finished runs side by side: markdown table and a test-accuracy-vs-training-time plot",
         _arguments)
def compare(args: argparse.Namespace) -> None:
    if args.plot and Path(args.plot).suffix.lower() != ".png":
        raise UserError(f"--plot {args.plot}: the plot is a PNG; name it FILE.png")
    if args.out and Path(args.out).suffix.lower() == ".png":
        raise UserError(f"--out {args.out} is the markdown table; name the plot with --plot FILE.png")
    runs = find_runs(args.runs)
    plot = Path(args.plot) if args.plot else Path(args.out).with_suffix(".png") if args.out else None
    for given, example in ((args.out, "table.md"), (plot, "plot.png")):
        if given:
            _check_outside_runs(check_destination(given, example), runs)
    rows = sort_rows(read_rows(runs), args.sort)
    table = markdown_table(rows)
    if plot is not None and not args.plot and not any(row.metric == "accuracy" for row in rows):
        # The plot --out implies is of test accuracy: runs scored otherwise (translation's BLEU) get their table.
        print("no plot: none of these runs is scored by accuracy", file=sys.stderr)
        plot = None
    if plot is not None:  # the plot first: a table is never left without the plot it announces
        plot_accuracy_vs_time(rows, plot)
        print(f"plot: {plot}", file=sys.stderr)
    if args.out:
        out = Path(args.out)
        write_text_whole(out, table)
        print(f"table: {out}", file=sys.stderr)
    print(table, end="")  # last: a failed write prints no table above its error


def _check_outside_runs(path: Path, runs: dict[Path, bool]) -> None:
    """A table or plot is never written into a run it compares, where it could replace the run's own files."""
    for run_dir in runs:
        if path.resolve().is_relative_to(run_dir.resolve()):  # resolved: through `..` and symlinks too
            raise UserError(f"{path} is inside the run {run_dir}; write the comparison outside the runs it compares")
