"""`dlzoo export`: a trained network as a self-contained file for other runtimes.

Formats: `pt2` (torch.export's ExportedProgram, loads with `torch.export.load` and needs no dlzoo code) and `onnx`
(needs the `export` extra: onnx, onnxscript). The batch dimension is dynamic (and whatever else the task leaves
free: `Task.export_dynamic_shapes`). Beside the file, `<file>.json` holds what inference needs: recipe, class names,
the inputs (names, shapes, dtypes), how to prepare them (as data in `meta`, e.g. `meta.preprocess`, and in words,
`preparation`) and what the outputs are (`outputs`).
"""

from __future__ import annotations

import contextlib
import inspect
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, get_args

import torch

from dlzoo.errors import UserError
from dlzoo.files import all_written_whole, check_destination
from dlzoo.runs import LoadedRun, load_for_inference

Format = Literal["pt2", "onnx"]
FORMATS: tuple[str, ...] = get_args(Format)


def export_run(run: LoadedRun, fmt: Format, out: Path) -> tuple[Path, dict[str, Any]]:
    """Write the run's program to `out` and its sidecar beside it; returns the file and the sidecar."""
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
    task.check_export_format(fmt)
    module, example = task.export_program()
    module, dynamic = module.eval(), task.export_dynamic_shapes(example)
    sidecar = {
        "recipe": run.recipe.name,
        "format": fmt,
        "checkpoint": str(run.checkpoint),
        "inputs": [{"name": name, "shape": _shape(tensor, dims), "dtype": str(tensor.dtype)}
                   for name, tensor, dims in zip(input_names(module), example, dynamic, strict=True)],
        **task.export_contract(),  # in words: how the inputs are prepared, what comes out
        "meta": task.shown_meta(),
    }
    with all_written_whole([out, info]) as (tmp, info_tmp):
        _write_program(module, example, dynamic, fmt, tmp)
        info_tmp.write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")
    return out, sidecar


def describe_inputs(sidecar: dict[str, Any]) -> str:
    """The program's inputs in one line: `numbers (batch, 33) float32, codes (batch, 40) int64`."""
    return ", ".join(f"{item['name']} ({', '.join(map(str, item['shape']))}) {item['dtype'].removeprefix('torch.')}"
                     for item in sidecar["inputs"])


def input_names(module: torch.nn.Module) -> list[str]:
    """The program's inputs by the names its `forward` gives them (`images`; `numbers`, `codes`): the sidecar and
    an ONNX graph call them so."""
    return list(inspect.signature(module.forward).parameters)


def _shape(example: torch.Tensor, dynamic: dict[int, Any]) -> list[int | str]:
    """An input's shape for the sidecar: a free dimension by its name ("batch", "16*strip_width"), others as sizes."""
    return [dynamic[dim].__name__ if dim in dynamic else size for dim, size in enumerate(example.shape)]


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


def _write_program(module: torch.nn.Module, example: tuple[torch.Tensor, ...], dynamic: tuple[dict[int, Any], ...],
                   fmt: str, path: Path) -> None:
    with torch.no_grad(), warnings.catch_warnings():
        # torch's pt2 writer warns "No complete tensor found in the group" for every CPU-only program: its note
        # about weights kept on another device, which a user can do nothing about.
        warnings.filterwarnings("ignore", message="No complete tensor found in the group")
        # The ONNX writer's note on a program of several inputs, whose batch dimensions are one and the same.
        warnings.filterwarnings("ignore", message="# The axis name: batch will not be used")
        # Notes from inside torch while it traces an LSTM for ONNX (internal calls, its own weight attributes).
        warnings.filterwarnings("ignore", category=FutureWarning, message="_check_is_size will be removed")
        warnings.filterwarnings("ignore", message="The tensor attributes .* were assigned during export")
        if fmt == "pt2":
            with recurrent_layers_as_loops():
                program = torch.export.export(module, example, dynamic_shapes=dynamic)
            with open(path, "wb") as handle:  # a file object: torch warns of a name not ending in .pt2 (`--out m.PT2`)
                torch.export.save(program, handle)
        else:
            _clear_recurrent_dispatch_caches()  # torch.onnx applies the loop decomposition itself
            program = torch.onnx.export(module, example, input_names=input_names(module), output_names=["output"],
                                        dynamic_shapes=dynamic, dynamo=True, verbose=False)
            program.save(str(path))
            _free_output_dimensions(path)


def exports_recurrent_loops() -> bool:
    """Whether this torch writes an LSTM or GRU into a pt2 program as a loop over however many steps its input has
    (torch.export._patches, in recent releases): otherwise torch.export unrolls it over the example's steps, and the
    program would read texts of the example's length only. (A bidirectional `nn.LSTM`, the line recognizer's, comes
    out as a program that refuses a batch of one: that one stays ONNX only.)"""
    try:
        from torch.export._patches import (
            register_gru_while_loop_decomposition,  # noqa: F401
            register_lstm_while_loop_decomposition,  # noqa: F401
        )
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def recurrent_layers_as_loops() -> Iterator[None]:
    """Trace LSTMs and GRUs as loops (`exports_recurrent_loops`), as torch.onnx does for its own export."""
    if not exports_recurrent_loops():
        yield
        return
    from torch.export._patches import register_gru_while_loop_decomposition, register_lstm_while_loop_decomposition

    _clear_recurrent_dispatch_caches()
    try:
        with register_lstm_while_loop_decomposition(), register_gru_while_loop_decomposition():
            yield
    finally:
        _clear_recurrent_dispatch_caches()


def _clear_recurrent_dispatch_caches() -> None:
    """torch swaps the loop in as the LSTM's and GRU's Python kernel for the length of an export, without clearing
    the operators' dispatch caches: a second export in one process (in the test suite, or a notebook) then unrolled
    the LSTM again, and its program took the example's length only."""
    for op in (torch.ops.aten.lstm.input, torch.ops.aten.gru.input):
        cache = getattr(op, "_dispatch_cache", None)
        if cache is not None:
            cache.clear()


def _free_output_dimensions(path: Path) -> None:
    """Declare free an ONNX output dimension that follows a free input one but was written as the example's size.

    torch writes an LSTM's output with as many frames as the example had, though the graph computes any number
    (ONNX's LSTM); onnxruntime would then warn at every other width. ONNX's own shape inference from the inputs
    alone tells which output dimensions are free."""
    import onnx

    model = onnx.load(str(path))
    bare = onnx.ModelProto()
    bare.CopyFrom(model)
    del bare.graph.value_info[:]
    for output in bare.graph.output:
        output.type.tensor_type.ClearField("shape")
    inferred = onnx.shape_inference.infer_shapes(bare).graph.output
    changed = False
    for declared, found in zip(model.graph.output, inferred, strict=True):
        for dim, free in zip(declared.type.tensor_type.shape.dim, found.type.tensor_type.shape.dim, strict=False):
            if dim.HasField("dim_value") and free.HasField("dim_param"):
                dim.dim_param, changed = free.dim_param, True
    if changed:  # and the inner tensors' recorded shapes go too: they hold the example's size as well
        del model.graph.value_info[:]
        onnx.save(model, str(path))
