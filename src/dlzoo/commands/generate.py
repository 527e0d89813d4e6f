"""`dlzoo generate` draws images from a trained generative run; `dlzoo judge` measures them with a classifier run.

Both need only the run's checkpoint (config, task meta and weights); `judge` also reads the real data the run was
trained on, to compare with.
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from dlzoo.cli import add_device_option, command, seed_number
from dlzoo.config import MAX_IMAGES
from dlzoo.errors import UserError
from dlzoo.files import json_text


def _generate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a vae-* or cgan-* run directory")
    parser.add_argument("--out", required=True, metavar="FILE", help="image file for the grid, e.g. grid.png")
    parser.add_argument("--class", dest="label", metavar="CLASS",
                        help="conditional models: only this class (index or name, e.g. 7 or Sneaker)")
    parser.add_argument("--n", type=int, metavar="N",
                        help=f"images to draw (default 64); a conditional model without --class draws N per "
                             f"class, one row per class (default 8); at most {MAX_IMAGES:,} images in all")
    parser.add_argument("--seed", type=seed_number, default=0, help="seed of the noise (default 0)")
    add_device_option(parser)


@command("generate", "draw a grid of images from a generative run (VAEs add reconstructions and an "
         "interpolation)", _generate_arguments)
def generate(args: argparse.Namespace) -> None:
    from dlzoo.engine.evaluation import eval_mode
    from dlzoo.runs import check_not_a_run_file
    from dlzoo.tasks.generative import load_generative, sample_grid
    from dlzoo.vision.grid import check_image_path, save_image_grids

    out = check_not_a_run_file(check_image_path(args.out))
    task = load_generative(args.run_dir, args.device)
    generator = task.seeded(args.seed)
    grid = sample_grid(task, args.label, args.n, generator)
    grids = [(grid.images, out, grid.per_row)]
    descriptions = [grid.description]
    with eval_mode(task.models.values()):
        extras = task.extra_grids(generator)
    for suffix, (images, row) in extras.items():
        path = out.with_name(f"{out.stem}-{suffix}{out.suffix}")
        # Named after --out, not by the user: save_image_grids' advice (a file name inside the folder) does not fit.
        # A name too long for is_dir() is left to save_image_grids, which says so.
        with contextlib.suppress(OSError):
            if path.is_dir():
                raise UserError(f"'{path}', where the {suffix} beside {out} go, is a folder; choose another --out")
        grids.append((images, path, row))
        descriptions.append(suffix)
    # All grids or none: a VAE's extra grid that cannot be written must not leave the main one behind.
    for path, description in zip(save_image_grids(grids), descriptions, strict=True):
        print(f"wrote {path} ({description})")


def _judge_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a vae-* or cgan-* run directory")
    parser.add_argument("--classifier", required=True, metavar="RUN_DIR",
                        help="a classifier run trained on the same real data (e.g. a digits or fashion run)")
    parser.add_argument("--seed", type=seed_number,
                        help="seed of the noise (default: the one training's evaluations use, so that the figures "
                             "are those of its last evaluation)")
    add_device_option(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")


@command("judge", "measure a generative run with a classifier trained on real data: conditional accuracy and "
         "a Fréchet distance in its features", _judge_arguments)
def judge(args: argparse.Namespace) -> None:
    from dlzoo.tasks.generative import JUDGE_SEED, judge_run

    seed = JUDGE_SEED if args.seed is None else args.seed
    result = judge_run(Path(args.run_dir), Path(args.classifier), args.device, seed)
    if args.json:
        print(json_text(result))
        return
    print(f"{result['recipe']} judged by {result['judge_recipe']} ({result['judge']}), "
          f"{result['images']} generated vs {result['images']} held-out images:")
    if "conditional_accuracy" in result:
        print(f"  conditional accuracy  {result['conditional_accuracy']:.4f}  "
              f"(the judge on real held-out images: {result['judge_real_accuracy']:.4f})")
    print(f"  Fréchet distance      {result['frechet']:.4g}  = {result['frechet_ratio']:.2f} x the real-vs-real "
          f"floor {result['frechet_floor']:.4g}")
    print(f"  in the {result['features']}")
