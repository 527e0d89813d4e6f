"""Texts to what a text classifier reads, as its checkpoint says: jieba words or characters over a vocabulary of
the training texts (`dlzoo.text.tokens`), or BERT's WordPiece tokens (`dlzoo.text.wordpiece`).

A text is a string, or for a sentence-pair task (SNLI) a (first, second) pair, which WordPiece joins as
`[CLS] first [SEP] second [SEP]`; the other tokenizations read single texts.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import torch

from dlzoo.text.tokens import encode, tokenize_all

if TYPE_CHECKING:
    from dlzoo.text.wordpiece import Normalization, WordPieces

Text = str | tuple[str, str]


@lru_cache(maxsize=4)
def _wordpieces(vocabulary: tuple[str, ...], normalization: Normalization | None) -> WordPieces:
    from dlzoo.text.wordpiece import Normalization, WordPieces

    return WordPieces(vocabulary, normalization or Normalization())


def wordpieces(vocabulary: Sequence[str], normalization: Normalization | None = None) -> WordPieces:
    """The tokenizer of a vocabulary, built once (a run's classify calls reuse it); dlzoo's normalization unless
    another is given."""
    return _wordpieces(tuple(vocabulary), normalization)


def are_pairs(texts: Sequence[Text]) -> bool:
    return bool(texts) and isinstance(texts[0], tuple)


def text_tokens(texts: Sequence[Text], level: str, vocabulary: Sequence[str] | None = None,
                normalization: Normalization | None = None) -> list[list[str]]:
    """Each text's tokens as strings (for word vectors and the TF-IDF baseline); a pair's joined by `[SEP]`.
    WordPiece needs the `vocabulary` (and its `normalization`); the others make theirs from these tokens."""
    if level != "wordpiece":
        return tokenize_all(texts, level)  # type: ignore[arg-type] - single texts (check_config refuses pairs)
    words = wordpieces(vocabulary or (), normalization)
    if not are_pairs(texts):
        return words.tokens(texts)
    firsts, seconds = words.tokens([a for a, _ in texts]), words.tokens([b for _, b in texts])
    return [[*first, "[SEP]", *second] for first, second in zip(firsts, seconds, strict=True)]


def text_ids(texts: Sequence[Text], meta: dict[str, Any]) -> torch.Tensor:
    """(texts, longest kept length) int64 ids, padded with 0, as the run's `meta` (tokens, vocabulary, max_tokens,
    and for WordPiece its normalization) says."""
    if meta["tokens"] != "wordpiece":
        return encode(tokenize_all(texts, meta["tokens"]), meta["vocabulary"], meta["max_tokens"])
    from dlzoo.text.wordpiece import Normalization

    words = wordpieces(meta["vocabulary"], Normalization.of(meta))
    if are_pairs(texts):
        return words.encode([a for a, _ in texts], meta["max_tokens"], [b for _, b in texts])
    return words.encode(texts, meta["max_tokens"])
