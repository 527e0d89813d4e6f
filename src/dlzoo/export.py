"""`dlzoo export`: a trained network as a self-contained file for other runtimes.

Formats: `pt2` (torch.export's ExportedProgram, loads with `torch.export.load` and needs no dlzoo code) and `onnx`
(needs the `export` extra: onnx, onnxscript). The batch dimension is dynamic. Beside the file, `<file>.json` holds
what inference needs: recipe, class names, input shapes, the preprocessing (as data, `meta.preprocess`, and in
words, `preparation`) and what the outputs are (`outputs`).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Literal, get_args

import torch

from dlzoo.errors import UserError
from dlzoo.files import all_written_whole, check_destination
from dlzoo.runs import LoadedRun, load_for_inference

Format = Literal["pt2", "onnx"]
FORMATS: tuple[str, ...] = get_args(Format)


def _dynamic_batch(example: tuple[torch.Tensor, ...]) -> tuple[dict[int, Any], ...]:
    batch = torch.export.Dim("batch", min=1, max=65536)
    return tuple({0: batch} for _ in example)


def export_run(run: LoadedRun, fmt: Format, out: Path) -> Path:
    if fmt not in FORMATS:
        raise UserError(f"unknown export format '{fmt}'; choose one of {', '.join(FORMATS)}")
    out = Path(out)
    info = out.with_name(out.name + ".json")
    _check_destination(out, info, fmt)  # first: a folder given is meant as one, whatever its name ends in
    if out.suffix.lower() != f".{fmt}":
        raise UserError(f"--out {out} names a .{fmt} file for --format {fmt}: end it in .{fmt}")
    if fmt == "onnx":
        _check_onnx_installed()
    task = load_for_inference(run, "cpu")
    module, example = task.export_program()
    module = module.eval()
    sidecar = {
        "recipe": run.recipe.name,
        "format": fmt,
        "checkpoint": str(run.checkpoint),
        "inputs": [{"shape": ["batch", *example_tensor.shape[1:]], "dtype": str(example_tensor.dtype)}
                   for example_tensor in example],
        **task.export_contract(),  # in words: how pictures are prepared, what comes out
        "meta": task.meta,
    }
    with all_written_whole([out, info]) as (tmp, info_tmp):
        _write_program(module, example, fmt, tmp)
        info_tmp.write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")
    return out


def _check_destination(out: Path, info: Path, fmt: str) -> None:
    """Refuse a folder where the file or its sidecar goes before any work: `replace` would fail only at the end."""
    check_destination(out, f"model.{fmt}")
    if info.is_dir():
        raise UserError(f"{info} is a folder, but the export's JSON sidecar goes there; choose another file name")


def _check_onnx_installed() -> None:
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise UserError("ONNX export needs: pip install 'dlzoo[export]' (onnx, onnxscript)") from None


def _write_program(module: torch.nn.Module, example: tuple[torch.Tensor, ...], fmt: str, path: Path) -> None:
    with torch.no_grad(), warnings.catch_warnings():
        # torch's pt2 writer warns "No complete tensor found in the group" for every CPU-only program: its note
        # about weights kept on another device, which a user can do nothing about.
        warnings.filterwarnings("ignore", message="No complete tensor found in the group")
        if fmt == "pt2":
            program = torch.export.export(module, example, dynamic_shapes=_dynamic_batch(example))
            with open(path, "wb") as handle:  # a file object: torch warns of a name not ending in .pt2 (`--out m.PT2`)
                torch.export.save(program, handle)
        else:
            names = [f"input{i}" if len(example) > 1 else "input" for i in range(len(example))]
            program = torch.onnx.export(module, example, input_names=names, output_names=["output"],
                                        dynamic_shapes=_dynamic_batch(example), dynamo=True, verbose=False)
            program.save(str(path))
