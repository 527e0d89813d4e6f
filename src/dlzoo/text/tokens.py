"""From text to token ids: normalisation, segmentation (jieba words or characters), a vocabulary, padded batches.

Chinese has no spaces between words; jieba cuts a sentence into words with its own dictionary (it ships with the
package and works offline). A checkpoint keeps the vocabulary and the tokenization, so `predict` cuts new text
exactly as training did.
"""

from __future__ import annotations

import logging
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Literal

import torch

from dlzoo.errors import UserError

TokenLevel = Literal["word", "char", "wordpiece"]  # wordpiece: BERT's (dlzoo.text.wordpiece)

PAD, UNKNOWN = "<pad>", "<unk>"  # ids 0 and 1 of every vocabulary


def normalise(text: str) -> str:
    """NFKC folds full-width letters, digits and punctuation (common in Chinese text: `１２３，ＡＢＣ`) into their
    plain forms, so that both spellings are one token; then lower case."""
    return unicodedata.normalize("NFKC", text).lower()


def tokenize(text: str, level: TokenLevel) -> list[str]:
    """`text` as tokens: jieba's words, or its characters; whitespace is dropped either way."""
    text = normalise(text)
    if level == "char":
        return [char for char in text if not char.isspace()]
    return [word for word in _jieba().lcut(text) if not word.isspace()]


def tokenize_all(texts: Iterable[str], level: TokenLevel) -> list[list[str]]:
    return [tokenize(text, level) for text in texts]


def _jieba():  # noqa: ANN202 - jieba has no type hints
    try:
        import jieba
    except ImportError:
        raise UserError("word tokens need jieba: pip install 'dlzoo[text]' (or data.tokens=char)") from None
    jieba.setLogLevel(logging.WARNING)  # else every process prints "Building prefix dict..." on stderr
    return jieba


def jieba_version() -> str | None:
    try:
        import jieba
    except ImportError:
        return None
    return jieba.__version__


def build_vocabulary(token_lists: Iterable[Sequence[str]], min_count: int, max_size: int) -> list[str]:
    """The tokens seen at least `min_count` times, most frequent first (ties in first-seen order, so the same texts
    give the same vocabulary), at most `max_size` in all with PAD and UNKNOWN in front."""
    counts = Counter(token for tokens in token_lists for token in tokens)
    kept = [token for token, count in counts.most_common() if count >= min_count and token not in (PAD, UNKNOWN)]
    return [PAD, UNKNOWN, *kept[: max(0, max_size - 2)]]


def encode(token_lists: Sequence[Sequence[str]], vocabulary: Sequence[str], max_tokens: int) -> torch.Tensor:
    """Token ids (texts, longest kept length) padded with 0 at the end; a text is cut to its first `max_tokens`
    tokens, an empty one is one UNKNOWN (a network needs at least one step to read)."""
    # Without PAD: a text that says "<pad>" is a text, not padding.
    index = {token: i for i, token in enumerate(vocabulary) if token != PAD}
    unknown = index[UNKNOWN]
    return padded([[index.get(token, unknown) for token in tokens[:max_tokens]] or [unknown]
                   for tokens in token_lists])


def padded(rows: Sequence[Sequence[int]], empty_width: int = 1) -> torch.Tensor:
    """(rows, longest row) int64 ids, each row padded with 0 at the end (`empty_width` columns when there are no
    rows)."""
    ids = torch.zeros(len(rows), max((len(row) for row in rows), default=empty_width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return ids


def trim(ids: torch.Tensor) -> torch.Tensor:
    """A batch of padded ids cut to its longest text: a batch of short reviews is not read through the padding of
    the longest one in the data set."""
    longest = int((ids != 0).sum(1).max()) if len(ids) else 1
    return ids[:, : max(1, longest)]
