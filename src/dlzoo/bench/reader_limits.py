"""`dlzoo bench reader-limits`: how small the digits on a large page may be and still be read, and whether blank
pages read as nothing.

Pages (`pages.py`) of white paper, 1,000 and 3,000 px square, and photo-like pages of 3,000x2,250 px: light
falling off across the page and towards its corners with noise and JPEG; paper grain and stains with noise and
JPEG; a hand's shadow with blur, noise and JPEG; and all of these at once. On each, in three layouts (a lone digit,
4 digits side by side, 8), held-out mnist5k digits in their 28-px frames, each frame scaled to 1/N of the page's
short side and the row set at a random place on the page. For every N in `sizes` (largest frame first) `pictures`
pages are read; a layout's limit is the smallest frame down to which every page read exactly (its digits and
nothing else). Blank pages of 26 kinds (every effect alone, a dark board, and their combinations), `blank` of each
at 1,000x1,000 and 3,000x2,250 px, must read as nothing: the result counts those that read digits.

Every page is drawn from a generator seeded by (seed, kind, layout, N, picture), so a smaller run (fewer kinds,
sizes or pictures) reads the same pages as the full one.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

from dlzoo.bench import benchmark
from dlzoo.bench.common import machine, require_at_least, torch_threads, train_recipe
from dlzoo.bench.pages import draw_page, frames_row, place, random_effects, table_mask
from dlzoo.bench.reader import reading_run
from dlzoo.data.images import ImageArrays, load_image_arrays
from dlzoo.errors import UserError, unknown_name
from dlzoo.reader.read import DigitReader

SQUARE, PHOTO = (1000, 1000), (2250, 3000)  # (height, width)
# name: (page size, effects); the order is part of every page's seed, so new kinds go at the end.
PAGES: dict[str, tuple[tuple[int, int], tuple[str, ...]]] = {
    "white-1000": (SQUARE, ()),
    "white-3000": ((3000, 3000), ()),
    "photo": (PHOTO, ("gradient", "vignetting", "noise", "jpeg")),
    "paper": (PHOTO, ("grain", "blotches", "noise", "jpeg")),
    "shadow": (PHOTO, ("shadow", "blur", "noise", "jpeg")),
    "all": (PHOTO, ("gradient", "vignetting", "grain", "blotches", "shadow", "blur", "noise", "jpeg")),
}
LAYOUTS = {"lone": 1, "four": 4, "eight": 8}  # digits side by side on the page
SIZES = [10, 14, 20, 28, 40, 60, 80]  # a frame is 1/N of the page's short side
# Blank pages: every effect alone, then combinations as photos show them. The order is part of the seeds.
BLANK_KINDS = [
    "plain", "gradient", "vignetting", "noise", "grain", "blotches", "shadow", "table", "blur", "jpeg", "board",
    "gradient+noise+jpeg", "vignetting+noise+jpeg", "gradient+vignetting+noise+jpeg", "grain+blotches",
    "grain+blotches+noise+jpeg", "shadow+blur", "shadow+blur+noise+jpeg", "table+gradient", "table+shadow",
    "table+vignetting+noise+jpeg", "board+gradient+noise", "board+vignetting+noise+jpeg",
    "shadow+table+blur+noise+jpeg", "gradient+vignetting+grain+blotches+shadow+table+blur+noise+jpeg",
    "board+gradient+vignetting+shadow+table+blur+noise+jpeg",
]
BLANK_SIZES = (SQUARE, PHOTO)


@benchmark("reader-limits", "smallest digits read on large white and photo-like pages; blank pages read as nothing")
def run(pictures: int = 3, sizes: tuple[int, ...] = tuple(SIZES), pages: tuple[str, ...] = tuple(PAGES),
        layouts: tuple[str, ...] = tuple(LAYOUTS), blank: int = 3, blank_kinds: tuple[str, ...] = tuple(BLANK_KINDS),
        seed: int = 0, run_dir: str | None = None, epochs: int = 4, threads: int | None = None) -> dict[str, Any]:
    """pictures: pages read per kind, layout and size; sizes: frames as 1/N of the short side; pages, layouts,
    blank_kinds: which to read (`pages=` or `layouts=` with an empty value: none, for blank pages alone); blank:
    pages of each blank kind at each of the two page sizes (0: none); run_dir: the digits run that reads (default:
    one trained here, `epochs` epochs, seed 0; or DLZOO_READER_RUN)."""
    require_at_least(1, pictures=pictures, epochs=epochs)
    require_at_least(0, blank=blank, seed=seed)
    sizes = sorted(set(sizes))
    if not sizes or min(sizes) < 1:
        raise UserError(f"sizes must be one or more N >= 1 (a frame of 1/N of the page's short side), got {sizes}")
    pages, layouts = _known("page kind", pages, PAGES), _known("layout", layouts, LAYOUTS)
    blank_kinds = _known("blank page kind", blank_kinds, BLANK_KINDS)
    _check_fit(pages, layouts, sizes)
    with torch_threads(threads):
        reader, model = _reader(run_dir, epochs)
        digits = load_image_arrays("mnist5k")
        pool = readable(reader, digits)
        started = time.perf_counter()
        results = {page: {"size": list(PAGES[page][0]), "effects": list(PAGES[page][1]),
                          "layouts": {layout: read_layout(reader, digits, pool, page, layout, sizes, pictures, seed)
                                      for layout in layouts}}
                   for page in pages}
        blanks = read_blanks(reader, blank_kinds, blank, seed)
        return {
            "benchmark": "reader-limits",
            "data": f"the held-out mnist5k digits that the run classifies right alone ({len(pool)} of "
                    f"{len(digits.test_images)}), in their 28-px frames on drawn pages, seed {seed}",
            "model": model,
            "sizes": [f"1/{n}" for n in sorted(sizes)],
            "pictures": pictures,
            "pages": results,
            "blank": blanks,
            "read_seconds": time.perf_counter() - started,
            "machine": {**machine(torch.device("cpu")), "torch_threads": torch.get_num_threads()},
        }


def readable(reader: DigitReader, digits: ImageArrays) -> np.ndarray:
    """Indices of the held-out digits that the run's classifier reads right in their own 28-px frames: a page read
    wrong then tells what the page did to them (size, light, blur), not which digits the classifier gets wrong
    anyway (a 4-epoch run misreads 2-3% of them, so a page of 8 digits would often fail at any size)."""
    probabilities = reader.classify_prepared(reader.prepare(list(digits.test_images)))
    return np.flatnonzero(probabilities.argmax(1) == digits.test_labels)


def read_layout(reader: DigitReader, digits: ImageArrays, pool: np.ndarray, page: str, layout: str,
                sizes: list[int], pictures: int, seed: int) -> dict[str, Any]:
    """Per frame size, how many of `pictures` pages read exactly; the limit; what the others read. The digits are
    drawn from `pool`, indices into the held-out (test) digits of `digits`."""
    shape, effects = PAGES[page]
    read, wrong = {}, []
    for n in sorted(sizes):
        right = 0
        for picture in range(pictures):
            rng = np.random.default_rng([seed, list(PAGES).index(page), LAYOUTS[layout], n, picture])
            drawn = random_effects(effects, shape, rng)
            picks = pool[rng.integers(0, len(pool), LAYOUTS[layout])]
            row = frames_row(digits.test_images[picks], round(min(shape) / n))
            image = draw_page(place(row, shape, rng, table_mask(shape, drawn)), drawn, rng)
            truth, text = "".join(str(int(label)) for label in digits.test_labels[picks]), reader.read(image).text
            right += text == truth
            if text != truth:
                wrong.append({"size": f"1/{n}", "picture": picture, "truth": truth, "read": text})
        read[f"1/{n}"] = right
    return {"read": read, "smallest": _limit(read, pictures), "misread": wrong}


def read_blanks(reader: DigitReader, kinds: list[str], per_size: int, seed: int) -> dict[str, Any]:
    """How many blank pages of `kinds` (`per_size` of each at each page size) read digits, and which."""
    pages, wrong = 0, []
    for kind in kinds:
        for shape in BLANK_SIZES:
            for picture in range(per_size):
                rng = np.random.default_rng([seed, 1000 + BLANK_KINDS.index(kind), shape[1], picture])
                effects = random_effects([] if kind == "plain" else kind.split("+"), shape, rng)
                text = reader.read(draw_page(np.zeros(shape, np.float32), effects, rng)).text
                pages += 1
                if text:
                    wrong.append({"kind": kind, "size": list(shape), "picture": picture, "read": text})
    return {"kinds": len(kinds), "pages": pages, "read_digits": len(wrong), "misread": wrong}


def _limit(read: dict[str, int], pictures: int) -> str | None:
    """The smallest frame down to which every size read all its pictures; None when the largest did not."""
    smallest = None
    for size, right in read.items():  # largest frame first
        if right < pictures:
            break
        smallest = size
    return smallest


def _known(what: str, names: Sequence[str], known: Iterable[str]) -> list[str]:
    """`names`, each checked to be one of `known`."""
    names = [name for name in names if name]  # `pages=` on the command line is [""]: none
    for name in names:
        if name not in known:
            raise unknown_name(what, name, known)
    return names


def _check_fit(pages: list[str], layouts: list[str], sizes: list[int]) -> None:
    """Refuse, before any training, a frame too large for its row to fit on the page."""
    for page in pages:
        height, width = PAGES[page][0]
        for layout in layouts:
            frame = round(min(height, width) / min(sizes))
            if LAYOUTS[layout] * frame > width:
                raise UserError(f"sizes: {LAYOUTS[layout]} frames of 1/{min(sizes)} of the short side "
                                f"({frame} px) do not fit side by side on the {width}x{height} page {page}")


def _reader(run_dir: str | None, epochs: int) -> tuple[DigitReader, dict[str, Any]]:
    """The reader and what the result says of its run: `run_dir`, DLZOO_READER_RUN, or a digits run trained here."""
    from dlzoo.reader import load_reader

    run_dir = run_dir or os.environ.get("DLZOO_READER_RUN")
    if run_dir is None:
        overrides = ["trainer.device=cpu", "trainer.seed=0", f"trainer.epochs={epochs}"]
        run_dir = train_recipe("digits", overrides)["run_dir"]
    reader = load_reader(run_dir, "cpu")
    if not isinstance(reader, DigitReader):
        raise UserError(f"reader-limits measures the digits reader: run_dir {run_dir} must be a digits run, not a "
                        "digit-lines run")
    return reader, reading_run(run_dir, reader)
