"""BERT's tokens: WordPiece, with Hugging Face's `tokenizers` (Rust, fast), in bert-base-chinese's layout.

Text is NFKC-normalised (full-width `１２３，ＡＢＣ` become plain), lower-cased and cut as BERT cuts it: every
Chinese character a token of its own, other words into pieces of the vocabulary (`playing` -> `play ##ing`).
A vocabulary is either learned from the training texts (`learn_vocabulary`) or read from a BERT `vocab.txt`
(`read_vocabulary_file`; bert-base-chinese's, which the cn-clip package ships, has 21,128 tokens). Its special
tokens are found by name, so both layouts work: ours puts them first (`[PAD]` 0, `[UNK]` 1, `[CLS]` 2 ...),
Google's at 0 and 100-103. Padding is id 0 in both, as every dlzoo text model expects. A model from the Hugging
Face Hub is read as its own tokenizer reads (`Normalization`): no NFKC, and lower-cased only if it was trained so.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from dlzoo.errors import UserError
from dlzoo.text.tokens import padded

PAD, UNKNOWN, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIALS = (PAD, UNKNOWN, CLS, SEP, MASK)


@dataclass(frozen=True)
class Normalization:
    """What happens to a text before it is cut. dlzoo's vocabularies: NFKC, then lower-cased (accents stripped).
    A Hub model's: as its `BertTokenizer` does (`nfkc=False`; `lowercase` from its do_lower_case), so that each id
    means what it meant in pretraining: NFKC would turn bert-base-chinese's full-width `，` into another token."""

    nfkc: bool = True
    lowercase: bool = True
    strip_accents: bool | None = None  # None: when lower-casing, as BERT's tokenizers do

    def as_dict(self) -> dict[str, bool]:
        return asdict(self)

    @classmethod
    def of(cls, meta: dict[str, Any]) -> Normalization:
        """A run's, from its meta (runs from before Hub models have none: dlzoo's)."""
        return cls(**meta.get("normalization", {}))


def import_tokenizers():  # noqa: ANN201 - imported on use: `dlzoo list` stays light
    """Hugging Face `tokenizers`, or a UserError naming the extra that brings it (BERT's and translation's pieces
    are both cut by its WordPiece)."""
    try:
        import tokenizers
    except ImportError:
        raise UserError("WordPiece tokens need Hugging Face tokenizers: pip install 'dlzoo[text]'") from None
    return tokenizers


def _cutter(vocabulary: dict[str, int] | None,  # noqa: ANN202 - a tokenizers.Tokenizer
            normalization: Normalization = Normalization()):
    """A tokenizer that normalises and cuts as BERT does, over `vocabulary` (None: an empty one, to learn)."""
    tokenizers = import_tokenizers()
    from tokenizers import models, normalizers, pre_tokenizers

    cutter = tokenizers.Tokenizer(models.WordPiece(vocabulary or {}, unk_token=UNKNOWN))
    # BertNormalizer puts spaces around each Chinese character (so each is a word of its own) and lower-cases;
    # NFKC first, as dlzoo's other text models normalise.
    bert = normalizers.BertNormalizer(strip_accents=normalization.strip_accents,
                                         lowercase=normalization.lowercase)
    cutter.normalizer = normalizers.Sequence([normalizers.NFKC(), bert]) if normalization.nfkc else bert
    cutter.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return cutter


def learn_vocabulary(texts: Iterable[str], size: int, min_count: int) -> list[str]:
    """A WordPiece vocabulary of at most `size` tokens from `texts`, the special tokens first: every character seen
    at least `min_count` times (as a word's start, and as `##` inside a word), most frequent first, then the whole
    words as frequent. For Chinese, where BERT reads a character at a time, that is bert-base-chinese's kind of
    vocabulary. Counted here rather than by `tokenizers`' WordPieceTrainer, whose merges break ties in hash order:
    it gave vocabularies of 5,680 to 5,683 tokens from the same news corpus in four runs. The same texts give the
    same vocabulary."""
    cutter = _cutter(None)
    words: Counter[str] = Counter()
    for text in texts:
        words.update(word for word, _ in cutter.pre_tokenizer.pre_tokenize_str(cutter.normalizer.normalize_str(text)))
    pieces: Counter[str] = Counter()
    for word, count in words.items():
        pieces[word[0]] += count
        for char in word[1:]:
            pieces["##" + char] += count
    ranked = sorted(pieces.items(), key=_most_first) + sorted(
        ((word, count) for word, count in words.items() if len(word) > 1), key=_most_first)
    kept = [token for token, count in ranked if count >= min_count and token not in SPECIALS]
    return [*SPECIALS, *kept[: max(0, size - len(SPECIALS))]]


def _most_first(item: tuple[str, int]) -> tuple[int, str]:
    return -item[1], item[0]


def read_vocabulary_file(path: str | Path) -> list[str]:
    """A BERT vocab.txt: one token per line, a token's id its line number (from 0)."""
    from dlzoo.data.texts import read_text

    path = Path(path).expanduser()
    tokens = read_text(path).splitlines()  # every line: a blank one is a token's id too
    check_vocabulary(tokens, str(path))
    return tokens


def check_vocabulary(tokens: Sequence[str], where: str) -> None:
    missing = [token for token in SPECIALS if token not in tokens]
    if missing:
        raise UserError(f"{where} lacks BERT's special tokens {', '.join(missing)}: not a BERT vocabulary")
    if tokens[0] != PAD:  # every dlzoo text model reads id 0 as padding
        raise UserError(f"{where}: the first token must be {PAD} (id 0 is padding), not {tokens[0]!r}")
    if len(set(tokens)) != len(tokens):
        repeated = next(token for token in tokens if tokens.count(token) > 1)
        raise UserError(f"{where} lists {repeated!r} twice: a token's id is its line")


class WordPieces:
    """Texts (or pairs of texts) to padded `[CLS] A [SEP] (B [SEP])` ids with a vocabulary's tokens."""

    def __init__(self, vocabulary: Sequence[str], normalization: Normalization = Normalization()):
        check_vocabulary(vocabulary, "the vocabulary")
        self.vocabulary = list(vocabulary)
        self.normalization = normalization
        self.ids = {token: i for i, token in enumerate(self.vocabulary)}
        self.cls, self.sep, self.mask, self.unknown = (self.ids[t] for t in (CLS, SEP, MASK, UNKNOWN))
        self._cutter = _cutter(self.ids, normalization)

    def __len__(self) -> int:
        return len(self.vocabulary)

    def pieces(self, texts: Sequence[str]) -> list[list[int]]:
        """Each text's token ids, without special tokens."""
        return [encoding.ids for encoding in self._cutter.encode_batch(list(texts), add_special_tokens=False)]

    def tokens(self, texts: Sequence[str]) -> list[list[str]]:
        """Each text's tokens as strings (`play`, `##ing`)."""
        return [[self.vocabulary[i] for i in ids] for ids in self.pieces(texts)]

    def encode(self, texts: Sequence[str], max_tokens: int, seconds: Sequence[str] | None = None) -> torch.Tensor:
        """(texts, longest kept length) int64 ids: `[CLS] text [SEP]`, or `[CLS] text [SEP] second [SEP]` for
        pairs, padded with 0 at the end; a text longer than `max_tokens` in all loses its last pieces (of a pair,
        from the longer of the two first, as BERT cuts)."""
        if max_tokens < 3 + (seconds is not None):
            raise UserError(f"max_tokens={max_tokens} leaves no room for a text beside [CLS] and [SEP]")
        firsts = self.pieces(texts)
        seconds_ = self.pieces(seconds) if seconds is not None else [None] * len(firsts)
        rows = [self.assemble(first, second, max_tokens)[0] for first, second in zip(firsts, seconds_, strict=True)]
        return padded(rows, empty_width=2)

    def assemble(self, first: list[int], second: list[int] | None, max_tokens: int) -> tuple[list[int], int]:
        """`[CLS] first [SEP] (second [SEP])` cut to `max_tokens`, and the length of its first segment."""
        if second is None:
            head = [self.cls, *first[: max_tokens - 2], self.sep]
            return head, len(head)
        first, second = list(first), list(second)
        while len(first) + len(second) > max_tokens - 3:  # the longer loses a piece, as BERT's truncation does
            (first if len(first) >= len(second) else second).pop()
        head = [self.cls, *first, self.sep]
        return [*head, *second, self.sep], len(head)
