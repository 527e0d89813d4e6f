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
    """Precision, recall, F1 and support of every class, and the class its samples are most often mistaken for
    (None when never): what a single accuracy hides, such as a class that is never predicted at all."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    indices = list(range(len(classes)))
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predicted, labels=indices, zero_division=0)
    confusion = confusion_matrix(labels, predicted, labels=indices)  # rows: true class, columns: predicted
    rows = []
    for index, name in enumerate(classes):
        mistakes = confusion[index].copy()
        mistakes[index] = 0
        worst = int(mistakes.argmax())
        rows.append({"class": name, "precision": round(float(precision[index]), 4),
                     "recall": round(float(recall[index]), 4), "f1": round(float(f1[index]), 4),
                     "support": int(support[index]), "predicted": int(confusion[:, index].sum()),
                     "mistaken_for": classes[worst] if mistakes[worst] else None,
                     "mistaken_count": int(mistakes[worst])})
    return rows


def format_per_class(rows: list[dict[str, Any]]) -> str:
    width = max(len("class"), *(len(row["class"]) for row in rows))
    lines = [f"  {'class':<{width}}  precision  recall      f1  support  predicted  most often mistaken for"]
    for row in rows:
        mistaken = f"{row['mistaken_for']} ({row['mistaken_count']})" if row["mistaken_for"] else "-"
        lines.append(f"  {row['class']:<{width}}  {row['precision']:9.3f}  {row['recall']:6.3f}  {row['f1']:6.3f}"
                     f"  {row['support']:7d}  {row['predicted']:9d}  {mistaken}")
    return "\n".join(lines)
