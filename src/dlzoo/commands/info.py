"""`dlzoo list`, `show`, `models`, `data`: what recipes, models and data sources exist, and where data was found."""

from __future__ import annotations

import argparse
import shutil
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlzoo.cli import command, seed_number
from dlzoo.errors import UserError

if TYPE_CHECKING:
    from dlzoo.data.sources import DataSource
    from dlzoo.recipes import Recipe
    from dlzoo.runs import LoadedRun
    from dlzoo.text.wordpiece import Normalization


def _table(rows: list[list[str]], header: list[str]) -> str:
    """Aligned columns; on a terminal the last one (free text) wraps to its width, indented under its column.
    Piped, each row stays one line, for grep."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header) - 1)]
    indent = sum(width + 2 for width in widths)
    columns = shutil.get_terminal_size(fallback=(0, 0)).columns  # 0: not a terminal and no $COLUMNS
    last_width = max(40, columns - indent) if columns else 10**6
    lines = []
    for row in [header, *rows]:
        first = "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=False)) + "  "
        wrapped = textwrap.wrap(str(row[-1]), last_width, break_on_hyphens=False) or [""]
        lines.append((first + wrapped[0]).rstrip())
        lines.extend(" " * indent + more for more in wrapped[1:])
    last_rule = min(last_width, max(len(str(row[-1])) for row in [header, *rows]))
    lines.insert(1, "  ".join("-" * width for width in [*widths, last_rule]))
    return "\n".join(lines)


def _model_names(recipe: Recipe) -> list[str]:
    """The registered model of every model section (`model`, or e.g. a GAN's `generator` and `critic`), or the
    network a task builds itself and names in `model.name` (housing's mlp, the text recipes' bilstm)."""
    config = recipe.config()
    names = [getattr(config, section).name for section in recipe.task.model_kinds]
    own = getattr(getattr(config, "model", None), "name", None)
    return names or ([own] if isinstance(own, str) else [])


@command("list", "recipes with their task, model, data and measured reference result")
def list_recipes(args: argparse.Namespace) -> None:
    from dlzoo.recipes import list_recipes as recipes

    rows = []
    for recipe in recipes():
        config = recipe.config()
        model = " + ".join(_model_names(recipe)) or "-"
        rows.append([recipe.name, recipe.task.__name__, model, config.data.source or "-",
                     recipe.reference or "(not yet measured)"])
    print(_table(rows, ["recipe", "task", "model", "data", "reference result"]))


def _show_arguments(parser: argparse.ArgumentParser) -> None:
    # Optional to argparse, required below: argparse would also call the optional KEY=VALUE list "required".
    parser.add_argument("recipe", nargs="?", metavar="RECIPE|RUN_DIR")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="show the config with these applied")
    parser.add_argument("--config", metavar="FILE", help="YAML file of config values")


@command("show", "a recipe's full config as YAML (the defaults, or with overrides applied), or a run's",
         _show_arguments)
def show(args: argparse.Namespace) -> None:
    from dlzoo.config import to_yaml
    from dlzoo.recipes import get_recipe, list_recipes
    from dlzoo.runs import build_config

    if not args.recipe:
        raise UserError("name a recipe to show (see `dlzoo list`), or a run directory")
    a_path = "/" in args.recipe or args.recipe.startswith(".")  # `./runs/x`: a run meant, whether or not it is there
    if args.recipe not in {recipe.name for recipe in list_recipes()} and (a_path or Path(args.recipe).is_dir()):
        _show_run(Path(args.recipe), args)
        return
    recipe = get_recipe(args.recipe)
    config = build_config(recipe, args.config, args.overrides)  # before any output: a bad override prints nothing
    print(f"# {recipe.name}: {recipe.summary}")
    print(to_yaml(config), end="")


def _show_run(run_dir: Path, args: argparse.Namespace) -> None:
    """A run's config as it trained, and the classes its predictions name: `index` in `dlzoo predict --json` is a
    class's place in this list (the folder names of a picture folder, sorted)."""
    from dlzoo.config import to_yaml
    from dlzoo.engine import checkpoint
    from dlzoo.runs import open_run, read_run_config

    if args.overrides or args.config:
        raise UserError(f"{run_dir} is a run: its config is fixed by training (a recipe name takes overrides)")
    # RUN/checkpoints/epoch-NNNN, as eval takes it; RUN/checkpoints is refused as eval refuses it (name one or the run)
    if checkpoint.CHECKPOINTS in (run_dir.absolute().parent.name, run_dir.absolute().name):
        _show_checkpoint(run_dir, open_run(run_dir))
        return
    recipe, config = read_run_config(run_dir)
    if not checkpoint.list_checkpoints(run_dir):  # stopped in its first epoch: its config, but no classes yet
        print(f"# {run_dir}: recipe {recipe.name}, no checkpoint yet")
        print(to_yaml(config), end="")
        return
    _show_checkpoint(run_dir, open_run(run_dir))


def _show_checkpoint(named: Path, run: LoadedRun) -> None:
    """The config and classes a checkpoint holds (the ones `dlzoo eval` and `predict` rebuild the run from)."""
    from dlzoo.config import to_yaml

    print(f"# {named}: recipe {run.recipe.name}, checkpoint {run.checkpoint.name}")
    classes = run.metadata["meta"].get("classes")
    if classes:
        print("# classes (index: name): " + ", ".join(f"{index}: {name}" for index, name in enumerate(classes)))
    print(to_yaml(run.config), end="")


@command("models", "registered models with their parameter counts")
def models(args: argparse.Namespace) -> None:
    import torch

    from dlzoo.models import create, list_models

    rows = []
    for entry in list_models():
        # On the meta device nothing is allocated or initialised: VGG-11's 129M parameters count in milliseconds.
        with torch.device("meta"):
            model = create(entry.name, num_classes=10, in_channels=entry.input_size[0])
        params = sum(p.numel() for p in model.parameters())
        rows.append([entry.name, entry.kind, f"{params:,}", "x".join(map(str, entry.input_size)), entry.summary])
    print(_table(rows, ["model", "kind", "parameters", "input", "description"]))


def _data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", nargs="?", choices=["list", "show"], default="list",
                        help="list: every source (default); show SOURCE: one source and a picture of its images")
    parser.add_argument("source", nargs="?", help="the source to show, e.g. fashion-mnist")
    parser.add_argument("--augment", action="store_true", help="show each image with its training augmentations")
    parser.add_argument("--recipe", help="whose augmentation to show (default: the source's main recipe)")
    parser.add_argument("--out", metavar="FILE", help="picture to write (default <source>[-augment].png)")
    parser.add_argument("--seed", type=seed_number, default=0, help="seed of the augmentations drawn")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="the recipe's config overrides, e.g. data.path=DIR data.colour=true for a folder")


@command("data", "every data source, where it was found on this machine, and how to get what is missing",
         _data_arguments)
def data(args: argparse.Namespace) -> None:
    import dlzoo.recipes
    from dlzoo.data.sources import SOURCES, get_source

    dlzoo.recipes.list_recipes()  # recipes import the data modules that register their sources
    if args.action == "show":
        _show_source(get_source(args.source) if args.source else None, args)
        return
    if args.source or args.augment or args.recipe or args.out or args.overrides:
        raise UserError("a source, --augment, --recipe, --out and KEY=VALUE go with `dlzoo data show SOURCE`")
    for name in sorted(SOURCES):
        source = SOURCES[name]
        where = source.where()
        status = f"found: {where}" if where else f"missing: {source.how_to_get()}"
        print(f"{name}\n  {source.description}\n  {status}")


def _show_source(source: DataSource | None, args: argparse.Namespace) -> None:
    from dlzoo.runs import check_not_a_run_file
    from dlzoo.vision.gallery import check_output, gallery, save_gallery

    if source is None:
        raise UserError("name the source to show, e.g. dlzoo data show fashion-mnist --augment")
    from dlzoo.data.corpus import CORPUS_SOURCES
    from dlzoo.data.pairs import PAIR_SOURCES
    from dlzoo.data.parallel import PARALLEL_SOURCES
    from dlzoo.data.texts import TEXT_SOURCES
    from dlzoo.vision.mask_gallery import RECIPES as MASK_RECIPES

    if source.name in TEXT_SOURCES + PAIR_SOURCES + CORPUS_SOURCES + PARALLEL_SOURCES and (args.augment or args.out):
        raise UserError(f"{source.name} holds texts: it is shown on the terminal, and texts are not augmented "
                        f"(no --augment, no --out)")
    if source.name in PARALLEL_SOURCES:
        _show_parallel(source, args)
        return
    if source.name in CORPUS_SOURCES:
        _show_corpus(source, args)
        return
    if source.name in TEXT_SOURCES + PAIR_SOURCES:
        _show_texts(source, args)
        return
    out = check_not_a_run_file(check_output(Path(args.out or f"{source.name}{'-augment' if args.augment else ''}.png")))
    if source.name in MASK_RECIPES:
        _show_masks(source, args, out)
        return
    shown = gallery(source.name, augment=args.augment, recipe=args.recipe, seed=args.seed, overrides=args.overrides)
    path = save_gallery(shown, out)
    what = (f"the first training image of each class, then {shown.columns - 1} augmentations as the "
            f"'{shown.recipe}' recipe draws them" if shown.augmented else "training images, one row per class")
    print(f"{source.name}\n  {source.description}\n  found: {shown.location}\n  gallery: {path} ({what})")


def _show_masks(source: DataSource, args: argparse.Namespace, out: Path) -> None:
    from dlzoo.vision.gallery import save_gallery
    from dlzoo.vision.mask_gallery import mask_gallery

    if args.augment:
        raise UserError(f"{source.name} is shown as training draws it, picture above mask; --augment is for "
                        f"image classification sources")
    shown = mask_gallery(source.name, args.recipe, seed=args.seed, overrides=args.overrides)
    path = save_gallery(shown, out)
    print(f"{source.name}\n  {source.description}\n  found: {shown.location}\n  gallery: {path} (training pictures "
          f"above their masks, as the '{shown.recipe}' recipe reads them)")


def _show_texts(source: DataSource, args: argparse.Namespace) -> None:
    """A text source's first training texts (or pairs) of each class, as read and as the recipe's tokens cut them."""
    from dlzoo.data.pairs import PAIR_SOURCES
    from dlzoo.recipes import get_recipe
    from dlzoo.runs import build_config
    from dlzoo.tasks.text_classification import read_splits
    from dlzoo.text.encodings import text_tokens

    recipe = args.recipe or ("reviews-bert" if source.name in PAIR_SOURCES else "reviews")
    config = build_config(get_recipe(recipe), None, [f"data.source={source.name}", *args.overrides])
    data = config.data
    if not hasattr(data, "tokens"):
        raise UserError(f"recipe '{recipe}' does not read texts; text recipes: reviews, reviews-transformer, "
                        f"reviews-bert")
    splits = read_splits(data)
    vocabulary, normalization = (_wordpiece_vocabulary(config, splits.train_texts) if data.tokens == "wordpiece"
                                 else (None, None))
    print(f"{source.name}\n  {source.description}\n  found: {data.path or source.where()}\n"
          f"  {len(splits.train_texts):,} training and {len(splits.test_texts):,} test texts; the first of each class, "
          f"then its {data.tokens} tokens as '{recipe}' cuts them:")
    for index, name in enumerate(splits.classes):
        picked = [text for text, label in zip(splits.train_texts, splits.train_labels, strict=True) if label == index]
        print(f"{name} ({len(picked):,} training texts)")
        for text in picked[:3]:
            tokens = text_tokens([text], data.tokens, vocabulary, normalization)[0]
            shown = " | ".join(text) if isinstance(text, tuple) else text
            print(f"  {shown if len(shown) <= 80 else shown[:77] + '...'}\n"
                  f"    {' | '.join(tokens[:40])}{' | ...' if len(tokens) > 40 else ''}")


def _wordpiece_vocabulary(config: Any, texts: list[Any]) -> tuple[list[str], Normalization | None]:
    """The vocabulary a BERT recipe would read `texts` with, and how it normalises them: its pretrained run's or
    Hub model's, or learned from them (dlzoo's normalization)."""
    from dlzoo.text.finetune import PretrainedBert
    from dlzoo.text.wordpiece import learn_vocabulary

    if config.model.pretrained:
        pretrained = PretrainedBert.read(config.model.pretrained)
        return pretrained.vocabulary, pretrained.normalization
    parts = [part for text in texts for part in (text if isinstance(text, tuple) else (text,))]
    return learn_vocabulary(parts, config.data.max_vocabulary, config.data.min_count), None


def _show_corpus(source: DataSource, args: argparse.Namespace) -> None:
    """An unlabelled corpus's first training paragraphs, cut into sentences as pretraining pairs them up."""
    from dlzoo.data.corpus import corpus_splits, read_paragraphs
    from dlzoo.recipes import get_recipe
    from dlzoo.runs import build_config

    recipe = args.recipe or "bert-news"
    data = build_config(get_recipe(recipe), None, [f"data.source={source.name}", *args.overrides]).data
    if not hasattr(data, "mask_fraction"):
        raise UserError(f"recipe '{recipe}' does not pretrain on a corpus; the recipe that does: bert-news")
    splits = corpus_splits(read_paragraphs(data.source, data.path), data.test_fraction, data.split_seed)
    sentences = sum(len(paragraph) for paragraph in splits.train)
    print(f"{source.name}\n  {source.description}\n  found: {data.path or source.where()}\n"
          f"  {len(splits.train):,} training paragraphs ({sentences:,} sentences), {len(splits.test):,} held out; "
          f"the first paragraphs of two sentences or more (those pretraining pairs up), a sentence a line:")
    for paragraph in [paragraph for paragraph in splits.train if len(paragraph) >= 2][:3]:
        print("\n".join(f"  {s if len(s) <= 80 else s[:77] + '...'}" for s in paragraph) + "\n")


def _show_parallel(source: DataSource, args: argparse.Namespace) -> None:
    """A translation source's first training pairs, as read (data.KEY=VALUE: path, test_fraction, split_seed,
    reverse)."""
    from dlzoo.config import from_dict, parse_overrides
    from dlzoo.data.parallel import ParallelDataConfig, load_parallel

    if args.recipe:
        raise UserError(f"{source.name} is shown as read, for no recipe: leave out --recipe")
    keys = {}
    for key, value in parse_overrides(args.overrides):
        if not key.startswith("data.") or key == "data.source":
            raise UserError(f"{key}: {source.name} is shown with data.KEY=VALUE overrides only (data.path, "
                            f"data.test_fraction, data.split_seed, data.reverse)")
        keys[key.removeprefix("data.")] = value
    data = from_dict(ParallelDataConfig, {**keys, "source": source.name}, prefix="data.")
    splits = load_parallel(data.source, data.path, data.test_fraction, data.split_seed, data.reverse)
    print(f"{source.name}\n  {source.description}\n  found: {data.path or source.where()}\n"
          f"  {len(splits.train):,} training and {len(splits.test):,} test pairs"
          f"{' (reversed)' if data.reverse else ''}; the first training pairs, source -> target:")
    for pair in splits.train[:5]:
        shown = " -> ".join(pair)
        print(f"    {shown if len(shown) <= 100 else shown[:97] + '...'}")
    for note in splits.notes:
        print(f"  note: {note}")
