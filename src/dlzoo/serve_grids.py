"""GET /generate of `dlzoo serve` on a generative run: its query read as `dlzoo generate` reads its options, and the
grid that command writes, drawn (in the model's turn) and encoded as PNG in memory."""

from __future__ import annotations

import argparse
import threading
from urllib.parse import parse_qs

from dlzoo.cli import seed_number
from dlzoo.errors import UserError
from dlzoo.tasks.generative import QUERY, GenerativeImageTask, sample_grid
from dlzoo.vision.grid import grid_png

GRID_EXAMPLE = "curl -o grid.png 'http://HOST:PORT/generate?n=16'"


def grid_usage(conditional: bool) -> str:
    """How GET /generate is called: class= only where the model takes one."""
    return f"GET /generate?{'class=C&n=N&seed=S' if conditional else 'n=N&seed=S'}"


def draw_grid(task: GenerativeImageTask, query: str, lock: threading.Lock) -> bytes:
    """The PNG grid that GET /generate?QUERY asks for, drawn while holding `lock` (the model's turn); a UserError
    for a mistake in the query, worded as `dlzoo generate`'s with the query's names (n= for --n)."""
    label, n, seed = grid_options(query)
    with lock:
        grid = sample_grid(task, label, n, task.seeded(seed), QUERY)
    return grid_png(grid.images, grid.per_row)  # encoding a large grid takes a while: not while others wait


def grid_options(query: str) -> tuple[str | None, int | None, int]:
    """class=, n= and seed= of a GET /generate query, read as `dlzoo generate` reads --class, --n and --seed."""
    fields = parse_qs(query, keep_blank_values=True)  # an empty n= is refused, not taken for the default
    for name, values in fields.items():
        if name not in ("class", "n", "seed"):
            raise UserError(f"/generate takes class=, n= and seed=, not {name}=")
        if len(values) > 1:
            raise UserError(f"give {name}= once, not {len(values)} times")
    label, n, seed = (fields.get(name, [None])[0] for name in ("class", "n", "seed"))
    try:
        count = None if n is None else int(n)
    except ValueError:
        raise UserError(f"n= is a whole number, not {n!r}") from None
    try:
        return label, count, 0 if seed is None else seed_number(seed)
    except argparse.ArgumentTypeError as error:
        raise UserError(f"seed={seed}: {error}") from None
