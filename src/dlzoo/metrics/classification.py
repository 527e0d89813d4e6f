"""Scores of classifiers: loss and accuracy over a held-out split, and what a single accuracy hides, each class's
precision, recall and F1 and what it is mistaken for (`dlzoo eval --per-class`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from dlzoo.engine.runtime import Runtime


def loss_and_accuracy(scored: Iterable[tuple[torch.Tensor, torch.Tensor]], runtime: Runtime) -> dict[str, float]:
    """Mean cross-entropy and accuracy of (logits, labels) batches, over every process's batches."""
    totals = torch.zeros(3, device=runtime.device, dtype=torch.float64)  # loss sum, correct, count
    for logits, labels in scored:
        totals[0] += F.cross_entropy(logits.float(), labels, reduction="sum")
        totals[1] += (logits.argmax(1) == labels).sum()
        totals[2] += len(labels)
    loss, correct, count = runtime.all_reduce_sum(totals).tolist()
    return {"loss": loss / count, "accuracy": correct / count}


def per_class_report(labels: Any, predicted: Any, classes: list[str]) -> list[dict[str, Any]]:
    """`report_from_confusion` of true and predicted class indices (sequences or tensors)."""
    labels, predicted = torch.as_tensor(labels).long().flatten(), torch.as_tensor(predicted).long().flatten()
    count = len(classes)
    confusion = torch.bincount(labels * count + predicted, minlength=count * count).view(count, count)
    return report_from_confusion(confusion, classes)


def report_from_confusion(confusion: torch.Tensor, classes: list[str], iou: bool = False) -> list[dict[str, Any]]:
    """Precision, recall, F1 and support of every class from a confusion matrix (rows: true class, columns:
    predicted), and the class its samples are most often mistaken for (None when never): what a single accuracy
    hides, such as a class that is never predicted at all. With `iou`, each class's intersection over union too
    (a segmenter's pixels). A class never predicted has precision 0, one never present recall 0."""
    confusion = confusion.double().cpu()
    hits, support, predicted = confusion.diagonal(), confusion.sum(1), confusion.sum(0)
    precision = torch.where(predicted > 0, hits / predicted.clamp(min=1), 0.0)
    recall = torch.where(support > 0, hits / support.clamp(min=1), 0.0)
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall).clamp(min=1e-12), 0.0)
    union = support + predicted - hits
    rows = []
    for index, name in enumerate(classes):
        mistakes = confusion[index].clone()
        mistakes[index] = 0
        worst = int(mistakes.argmax())
        row = {"class": name, "precision": round(float(precision[index]), 4),
               "recall": round(float(recall[index]), 4), "f1": round(float(f1[index]), 4),
               "support": int(support[index]), "predicted": int(predicted[index]),
               "mistaken_for": classes[worst] if mistakes[worst] else None, "mistaken_count": int(mistakes[worst])}
        if iou:
            row["iou"] = round(float(hits[index] / union[index]), 4) if union[index] else None
        rows.append(row)
    return rows


def format_per_class(rows: list[dict[str, Any]]) -> str:
    width = max(len("class"), *(len(row["class"]) for row in rows))
    counts = max(7, *(len(str(row["support"])) for row in rows), *(len(str(row["predicted"])) for row in rows))
    has_iou = "iou" in rows[0]
    lines = [f"  {'class':<{width}}  precision  recall      f1{'     iou' if has_iou else ''}  {'support':>{counts}}"
             f"  {'predicted':>{max(counts, 9)}}  most often mistaken for"]
    for row in rows:
        mistaken = f"{row['mistaken_for']} ({row['mistaken_count']})" if row["mistaken_for"] else "-"
        iou = (f"  {row['iou']:6.3f}" if row["iou"] is not None else f"  {'-':>6}") if has_iou else ""
        lines.append(f"  {row['class']:<{width}}  {row['precision']:9.3f}  {row['recall']:6.3f}  {row['f1']:6.3f}"
                     f"{iou}  {row['support']:{counts}d}  {row['predicted']:{max(counts, 9)}d}  {mistaken}")
    return "\n".join(lines)
