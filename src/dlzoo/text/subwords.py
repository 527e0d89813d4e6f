"""Subword pieces for the words a model writes (translation's targets): the frequent words whole, the rare ones
spelled from pieces (`colonoscope` -> `colon ##oscope`), so that a vocabulary of a few thousand tokens writes any
word instead of `<unk>`.

The pieces are learned by byte-pair encoding (Sennrich et al., 2016) from the training words, here rather than by
`tokenizers` (whose trainer breaks ties in hash order: other pieces in another process); words are then cut into
them greedily, longest piece first, by `tokenizers`' WordPiece (no merge order to keep: the vocabulary alone says
how a word is cut). `##` marks a piece that continues a word.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from collections.abc import Sequence
from itertools import pairwise

from dlzoo.text.wordpiece import import_tokenizers

CONTINUES = "##"


def learn_pieces(word_lists: Sequence[Sequence[str]], size: int, min_count: int, reserved: Sequence[str]) -> list[str]:
    """Pieces learned from the words of `word_lists` by byte-pair encoding, sorted: every character of the words
    (as a word's start and, after `##`, inside one; all of them, even past `size`), then, while there are fewer
    than `size` pieces, the merge of the two neighbouring pieces seen most often, if at least `min_count` times.
    Ties go to the pair first in alphabetical order, so the same words give the same pieces: `tokenizers`'
    BpeTrainer breaks them in hash order, which changes from process to process. None of `reserved` (the caller's
    special tokens) is a piece."""
    counts = Counter(word for words in word_lists for word in words if word not in reserved)
    spelled = {word: [word[0], *(CONTINUES + char for char in word[1:])] for word in counts}
    pieces = {symbol for symbols in spelled.values() for symbol in symbols}
    pairs: Counter[tuple[str, str]] = Counter()
    holders: defaultdict[tuple[str, str], set[str]] = defaultdict(set)  # the words each pair is in
    for word, symbols in spelled.items():
        for pair in pairwise(symbols):
            pairs[pair] += counts[word]
            holders[pair].add(word)
    queue = [(-count, pair) for pair, count in pairs.items()]
    heapq.heapify(queue)
    while queue and len(pieces) < size:
        negative, pair = heapq.heappop(queue)
        if pairs.get(pair, 0) != -negative:  # counted again since it was queued: its newer entry stands
            continue
        if -negative < min_count:
            break
        merged = pair[0] + pair[1].removeprefix(CONTINUES)
        pieces.add(merged)
        changed: set[tuple[str, str]] = set()
        for word in sorted(holders.pop(pair)):
            old = spelled[word]
            new = _merged(old, pair, merged)
            for gone in pairwise(old):
                pairs[gone] -= counts[word]
                holders[gone].discard(word)
                changed.add(gone)
            for made in pairwise(new):
                pairs[made] += counts[word]
                holders[made].add(word)
                changed.add(made)
            spelled[word] = new
        pairs.pop(pair, None)
        for other in changed - {pair}:
            if pairs[other] > 0:
                heapq.heappush(queue, (-pairs[other], other))
            else:
                del pairs[other]
    return sorted(pieces)


def _merged(symbols: list[str], pair: tuple[str, str], merged: str) -> list[str]:
    """`symbols` with each occurrence of `pair`, left to right, made one symbol."""
    out, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
            out.append(merged)
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


class Subwords:
    """Words to pieces of `vocabulary` and back; a word with a character no piece holds becomes `unknown`."""

    def __init__(self, vocabulary: Sequence[str], unknown: str):
        tokenizers = import_tokenizers()
        from tokenizers import models, pre_tokenizers

        self._cutter = tokenizers.Tokenizer(models.WordPiece({token: i for i, token in enumerate(vocabulary)},
                                                             unk_token=unknown, continuing_subword_prefix=CONTINUES,
                                                             max_input_chars_per_word=100))
        self._cutter.pre_tokenizer = pre_tokenizers.WhitespaceSplit()

    def cut(self, word_lists: Sequence[Sequence[str]]) -> list[list[str]]:
        """Each list of words (without whitespace, as `dlzoo.text.tokens.tokenize` gives them) as pieces."""
        encodings = self._cutter.encode_batch([" ".join(words) for words in word_lists], add_special_tokens=False)
        return [encoding.tokens for encoding in encodings]


def words_of(pieces: Sequence[str]) -> list[str]:
    """Pieces joined back into words: a `##` piece continues the word before it (or starts one, written first)."""
    words: list[str] = []
    for piece in pieces:
        if piece.startswith(CONTINUES) and words:
            words[-1] += piece[len(CONTINUES):]
        else:
            words.append(piece.removeprefix(CONTINUES))
    return words
