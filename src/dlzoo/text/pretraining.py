"""BERT's pretraining examples: sentence pairs for next-sentence prediction, tokens masked for the language model.

Each paragraph of two sentences or more (as the curriculum keeps them) is read in chunks of whole sentences up to
`max_tokens` (fixed for the run, so every epoch has as many examples). Every epoch each chunk is cut at a random
sentence boundary into A and B; half the time B is the text that follows A (label 1), otherwise a run of sentences
from another paragraph (label 0), as Google's BERT builds them. A new draw every epoch: the pairs change.

Masking is drawn per batch (dynamic, as RoBERTa showed is no worse than BERT's fixed masks): 15% of the non-special
tokens are chosen; 80% of those become `[MASK]`, 10% a random token, 10% stay; the model is scored on all chosen.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch


@dataclass
class PairExamples:
    ids: torch.Tensor  # (examples, longest) int64, `[CLS] A [SEP] B [SEP]` padded with 0
    segments: torch.Tensor  # (examples, longest) int64, 0 up to A's [SEP], 1 after
    is_next: torch.Tensor  # (examples,) int64, 1 where B follows A in the text


def with_pairs(paragraphs: list[list[list[int]]]) -> list[list[list[int]]]:
    """The paragraphs (lists of sentences as token ids) that hold a pair: two sentences or more."""
    kept = [paragraph for paragraph in paragraphs if len(paragraph) >= 2]
    if len(kept) < 2:  # a random B comes from another paragraph
        raise ValueError(f"next-sentence pairs need two paragraphs of two sentences or more; found {len(kept)}")
    return kept


def chunks(paragraphs: list[list[list[int]]], max_tokens: int) -> list[tuple[int, int, int]]:
    """(paragraph, first sentence, end) of each run of whole sentences that fits `max_tokens` with [CLS] and two
    [SEP] (at least two sentences: a longer pair is truncated), a paragraph's runs one after the other."""
    room, found = max_tokens - 3, []
    for index, paragraph in enumerate(paragraphs):
        start = 0
        while start < len(paragraph) - 1:
            end, length = start, 0
            while end < len(paragraph) and (end - start < 2 or length + len(paragraph[end]) <= room):
                length += len(paragraph[end])
                end += 1
            found.append((index, start, end))
            start = end
    return found


def pair_examples(paragraphs: list[list[list[int]]], runs: list[tuple[int, int, int]], max_tokens: int, cls: int,
                  sep: int, rng: random.Random) -> PairExamples:
    """An example per run of `chunks(paragraphs)`, cut and paired afresh from `rng`."""
    room = max_tokens - 3
    rows: list[tuple[list[int], list[int], int]] = []
    for index, start, end in runs:
        paragraph = paragraphs[index]
        cut = rng.randint(start + 1, end - 1)  # A is paragraph[start:cut]
        first = [token for sentence in paragraph[start:cut] for token in sentence]
        if rng.random() < 0.5:
            rows.append((first, [token for sentence in paragraph[cut:end] for token in sentence], 1))
        else:
            rows.append((first, _elsewhere(paragraphs, index, room - len(first), rng), 0))
    return _assembled(rows, room, cls, sep)


def _elsewhere(paragraphs: list[list[list[int]]], index: int, room: int, rng: random.Random) -> list[int]:
    """A run of sentences from a random paragraph other than `index`, from a random sentence on, up to `room`
    tokens (at least one sentence)."""
    other = rng.randrange(len(paragraphs) - 1)
    paragraph = paragraphs[other + (other >= index)]
    tokens: list[int] = []
    for sentence in paragraph[rng.randrange(len(paragraph)):]:
        if tokens and len(tokens) + len(sentence) > room:
            break
        tokens += sentence
    return tokens


def _assembled(rows: list[tuple[list[int], list[int], int]], room: int, cls: int, sep: int) -> PairExamples:
    longest = 0
    pieces = []
    for first, second, is_next in rows:
        first, second = list(first), list(second)
        while len(first) + len(second) > room:  # the longer loses a token from its end, as BERT truncates
            (first if len(first) >= len(second) else second).pop()
        pieces.append((first, second, is_next))
        longest = max(longest, len(first) + len(second) + 3)
    ids = torch.zeros(len(pieces), longest, dtype=torch.long)
    segments = torch.zeros_like(ids)
    for i, (first, second, _) in enumerate(pieces):
        a = len(first) + 2
        ids[i, : a + len(second) + 1] = torch.tensor([cls, *first, sep, *second, sep])
        segments[i, a: a + len(second) + 1] = 1
    return PairExamples(ids, segments, torch.tensor([row[2] for row in pieces], dtype=torch.long))


def mask_tokens(ids: torch.Tensor, special: torch.Tensor, mask_id: int, vocabulary_size: int, probability: float,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The ids with tokens masked, and the boolean (batch, tokens) mask of those chosen (what the model is scored
    on). `special` is a boolean vector over the vocabulary of ids never chosen (padding, [CLS], [SEP])."""
    draws = torch.rand(ids.shape + (2,), device=ids.device, generator=generator)
    chosen = (draws[..., 0] < probability) & ~special[ids]
    if not chosen.any():  # a batch of short texts may draw none: score one token rather than nothing
        candidates = (~special[ids]).nonzero()
        if len(candidates):
            row, column = candidates[0]
            chosen[row, column] = True
    masked = ids.clone()
    masked[chosen & (draws[..., 1] < 0.8)] = mask_id
    replaced = chosen & (draws[..., 1] >= 0.8) & (draws[..., 1] < 0.9)
    random_ids = torch.randint(vocabulary_size, ids.shape, device=ids.device, generator=generator)
    replaced &= ~special[random_ids]  # never padding, [CLS] or [SEP] in the text: a draw of one leaves the token
    masked[replaced] = random_ids[replaced]
    return masked, chosen
