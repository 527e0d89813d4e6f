"""`dlzoo eval` and `dlzoo predict`: use a trained run; the checkpoint carries everything prediction needs."""

from __future__ import annotations

import argparse

from dlzoo.cli import add_device_option, command
from dlzoo.errors import UserError
from dlzoo.files import check_destination, check_folder_destination, json_text


def _eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR")
    parser.add_argument("settings", nargs="*", metavar="KEY=VALUE",
                        help="evaluate with other test-time settings, e.g. tta_shift=1 (image classifiers: tta_flip, "
                             "tta_shift, data.eval_batch_size; every recipe: trainer.threads)")
    parser.add_argument("--split", default=None, help="held-out split to evaluate (default: all of the task's)")
    add_device_option(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--per-class", action="store_true",
                        help="classifiers: precision, recall and F1 of every class, and what it is mistaken for")


@command("eval", "evaluate a run's latest checkpoint on held-out data", _eval_arguments)
def evaluate(args: argparse.Namespace) -> None:
    from dlzoo.config import parse_overrides
    from dlzoo.engine.evaluation import evaluate_split, evaluation_mode
    from dlzoo.engine.reporting import format_metrics
    from dlzoo.metrics.classification import format_per_class, report_from_confusion
    from dlzoo.runs import load_for_evaluation, open_run, set_evaluation_keys

    run = open_run(args.run_dir)
    set_evaluation_keys(run, args.settings)
    splits = run.recipe.task.eval_splits(run.config)
    if args.split is not None and args.split not in splits:
        raise UserError(f"{run.recipe.name} has no split '{args.split}'; it has: {', '.join(splits)}")
    if args.per_class and not run.recipe.task.sorts_into_classes():  # said before the data set is loaded
        raise UserError(f"recipe '{run.recipe.name}' does not sort samples into classes: no per-class report")
    chosen = [args.split] if args.split else list(splits)
    task, _ = load_for_evaluation(run, chosen, args.device)
    results = {split: evaluate_split(task, split) for split in chosen}
    per_class = {}
    if args.per_class:
        with evaluation_mode(task):
            for split in chosen:
                per_class[split] = report_from_confusion(task.class_confusion(split), task.meta["classes"],
                                                         iou=task.per_class_iou)
    settings = dict(parse_overrides(args.settings))  # checked by set_evaluation_keys
    if args.json:
        record = {"run_dir": str(run.run_dir), "checkpoint": run.checkpoint.name, "metrics": results,
                  "settings": settings}
        print(json_text(record | ({"per_class": per_class} if args.per_class else {}), ensure_ascii=False))
    else:
        for split, metrics in results.items():
            scored = f" ({', '.join(f'{key}={value}' for key, value in settings.items())})" if settings else ""
            print(f"{run.checkpoint}: {split}{scored} {format_metrics(metrics)}")
            if split in per_class:
                print(format_per_class(per_class[split]))


def _predict_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR")
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="files to predict (images, tables, ...); for pictures, a folder stands for those in it")
    parser.add_argument("--json", action="store_true", help="one JSON object per prediction")
    parser.add_argument("--out", metavar="PATH", help="write predictions to PATH: a CSV file (classifiers: a label "
                                                      "per picture or text line; tabular recipes: Kaggle's "
                                                      "submission), or a folder of masks or of pictures with boxes "
                                                      "drawn (segmentation, detection)")
    add_device_option(parser)


@command("predict", "predict with a trained run", _predict_arguments)
def predict(args: argparse.Namespace) -> None:
    from dlzoo.data.folder import pictures_of_folders
    from dlzoo.runs import check_not_a_run_file, load_for_inference, open_run

    run = open_run(args.run_dir)
    run.recipe.task.check_predicts(run.recipe.name, args.run_dir)
    if args.out:
        check_not_a_run_file(args.out)
    if args.out and not run.recipe.task.writes_predictions:  # rather than ignore it and write nothing
        raise UserError(f"--out writes predictions to files, which recipe '{run.recipe.name}' does not make; "
                        "use --json and redirect the output")
    if args.out and run.recipe.task.predictions_out_is_folder:
        check_folder_destination(args.out)
    elif args.out:  # a folder there, or a folder that cannot be written in, is said before the predicting
        check_destination(args.out, "predictions.csv")
    inputs = pictures_of_folders(args.inputs, "predict") if run.recipe.task.predicts_pictures else args.inputs
    task = load_for_inference(run, args.device)
    for record in task.predict(inputs, out=args.out):
        print(json_text(record, ensure_ascii=False) if args.json else task.describe(record))
