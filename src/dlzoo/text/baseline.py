"""The classical baseline a text network has to beat: TF-IDF of words and word pairs, logistic regression.

Fitted on the training texts' tokens (the network's own), its regularisation chosen by 3-fold cross-validation on
them, scored on the same test texts; `summary.json` reports it beside the network.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np


def _words_and_pairs(tokens: Sequence[str]) -> list[str]:
    return [*tokens, *(f"{first} {second}" for first, second in zip(tokens, tokens[1:], strict=False))]


def tfidf_baseline(train_tokens: Sequence[Sequence[str]], train_labels: np.ndarray,
                   test_tokens: Sequence[Sequence[str]], test_labels: np.ndarray, seed: int = 0) -> dict[str, Any]:
    # Imported when used: every command loads every recipe's task.
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    started = time.perf_counter()
    vectorizer = TfidfVectorizer(analyzer=_words_and_pairs, sublinear_tf=True, min_df=2)
    train = vectorizer.fit_transform(train_tokens)
    search = GridSearchCV(LogisticRegression(max_iter=2000, random_state=seed), {"C": [1.0, 4.0, 16.0]}, cv=3)
    search.fit(train, train_labels)
    accuracy = float((search.predict(vectorizer.transform(test_tokens)) == test_labels).mean())
    return {"model": f"TF-IDF of words and word pairs, logistic regression (C={search.best_params_['C']:g}, chosen by "
                     f"3-fold cross-validation on the training texts)",
            "accuracy": accuracy, "fit_seconds": round(time.perf_counter() - started, 2)}
