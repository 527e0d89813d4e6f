"""The curriculum's Transformer for sequence to sequence: an encoder reads the source tokens, a decoder writes the
target one token at a time, attending to what it wrote (causally) and to the encoder's output.

As d2l builds it: token embeddings scaled by sqrt(width) plus fixed sinusoidal positions, then torch's Transformer
encoder and decoder; here pre-norm layers (a LayerNorm before each sublayer, one after each stack), which train
without a long warm-up, and the output layer tied to the target embeddings (one matrix fewer to learn, as in
Vaswani et al.). Decoding is greedy, or a beam search: each step feeds everything written so far back in (no
cache: targets are short, and the greedy program that `dlzoo export` writes stays one plain loop).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

BEGIN, END = "<bos>", "<eos>"  # a target vocabulary's tokens after <pad> and <unk> (dlzoo.text.tokens)
PAD_ID, UNKNOWN_ID, BEGIN_ID, END_ID = 0, 1, 2, 3


@dataclass
class Seq2SeqModelConfig:
    width: int = 256  # d_model
    layers: int = 3  # of the encoder, and of the decoder
    heads: int = 4  # must divide width
    feed_forward: int = 1024
    dropout: float = 0.1


def sinusoids(length: int, width: int) -> torch.Tensor:
    """(length, width) fixed positional encodings: sin and cos of the position at geometric frequencies."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * (-math.log(10_000.0) / width))
    table = torch.zeros(length, width)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)[:, : width // 2]
    return table


class Seq2SeqTransformer(nn.Module):
    def __init__(self, source_vocabulary: int, target_vocabulary: int, config: Seq2SeqModelConfig,
                 max_positions: int):
        super().__init__()
        self.width = config.width
        self.source_embedding = nn.Embedding(source_vocabulary, config.width, padding_idx=PAD_ID)
        self.target_embedding = nn.Embedding(target_vocabulary, config.width, padding_idx=PAD_ID)
        for embedding in (self.source_embedding, self.target_embedding):  # scaled by sqrt(width) when read
            nn.init.normal_(embedding.weight, std=config.width ** -0.5)
        self.register_buffer("positions", sinusoids(max_positions, config.width), persistent=False)
        self.dropout = nn.Dropout(config.dropout)
        shape = dict(d_model=config.width, nhead=config.heads, dim_feedforward=config.feed_forward,
                     dropout=config.dropout, activation="gelu", batch_first=True, norm_first=True)
        # No nested tensors: pre-norm layers cannot use them (and nn.Transformer would warn so at every build).
        self.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(**shape), config.layers,
                                             norm=nn.LayerNorm(config.width), enable_nested_tensor=False)
        self.decoder = nn.TransformerDecoder(nn.TransformerDecoderLayer(**shape), config.layers,
                                             norm=nn.LayerNorm(config.width))
        self.output_bias = nn.Parameter(torch.zeros(target_vocabulary))

    def _embed(self, embedding: nn.Embedding, ids: torch.Tensor) -> torch.Tensor:
        return self.dropout(embedding(ids) * math.sqrt(self.width) + self.positions[: ids.shape[1]])

    def encode(self, source: torch.Tensor) -> torch.Tensor:
        """(batch, source tokens) ids, 0-padded, to the encoder's (batch, source tokens, width) output."""
        return self.encoder(self._embed(self.source_embedding, source),
                            src_key_padding_mask=source == PAD_ID)

    def decode(self, memory: torch.Tensor, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The decoder's (batch, target tokens, width) states after each of `target`'s tokens (it starts with
        <bos>), each seeing only the tokens up to itself."""
        length = target.shape[1]
        causal = torch.ones(length, length, dtype=torch.bool, device=target.device).triu(1)  # True: not seen
        # tgt_is_causal: said, not found by comparing the mask with a causal one (which an export cannot trace).
        return self.decoder(self._embed(self.target_embedding, target), memory, tgt_mask=causal, tgt_is_causal=True,
                            tgt_key_padding_mask=target == PAD_ID, memory_key_padding_mask=source == PAD_ID)

    def logits(self, states: torch.Tensor) -> torch.Tensor:
        """Scores over the target vocabulary, through the target embeddings (tied)."""
        return states @ self.target_embedding.weight.T + self.output_bias

    def forward(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: logits (batch, target tokens, target vocabulary) for every next token of `target` given
        the ones before it."""
        return self.logits(self.decode(self.encode(source), source, target))

    def greedy(self, source: torch.Tensor, steps: int, stop_early: bool = True) -> torch.Tensor:
        """(batch, <= steps) target ids, <bos> left out: the likeliest token at each step, 0 after <eos>.
        `stop_early=False` always takes `steps` steps (an exported program's loop has a fixed length)."""
        memory = self.encode(source)
        # Shaped like the source's columns, not by len(source): an exported program keeps its batch size free.
        written = torch.full_like(source[:, :1], BEGIN_ID)
        ended = torch.zeros_like(source[:, 0], dtype=torch.bool)
        for _ in range(steps):
            logits = self.logits(self.decode(memory, source, written)[:, -1])  # the last position's alone
            logits[:, [PAD_ID, BEGIN_ID]] = float("-inf")  # never written: padding, and <bos> again
            following = logits.argmax(-1)
            following = torch.where(ended, torch.zeros_like(following), following)
            written = torch.cat([written, following[:, None]], 1)
            ended = ended | (following == END_ID)
            if stop_early and bool(ended.all()):
                break
        return written[:, 1:]


    def beam_search(self, source: torch.Tensor, steps: int, beam: int, alpha: float = 0.75) -> torch.Tensor:
        """(batch, <= steps) target ids, as `greedy` gives them, from a beam search: at each step the `beam`
        likeliest continuations of each source are kept (a finished one carries on as padding, at no cost), and
        the one returned has the highest log-probability / length**alpha (d2l's normalisation, which keeps short
        translations from winning by being short)."""
        batch = source.shape[0]
        memory, repeated = self.encode(source).repeat_interleave(beam, 0), source.repeat_interleave(beam, 0)
        written = torch.full((batch * beam, 1), BEGIN_ID, dtype=torch.long, device=source.device)
        scores = torch.full((batch, beam), float("-inf"), device=source.device)
        scores[:, 0] = 0.0  # one hypothesis to begin with, not `beam` copies of it
        ended = torch.zeros(batch * beam, dtype=torch.bool, device=source.device)
        for _ in range(steps):
            step = self.logits(self.decode(memory, repeated, written)[:, -1]).float().log_softmax(-1)
            step[:, [PAD_ID, BEGIN_ID]] = float("-inf")
            step[ended] = float("-inf")
            step[ended, PAD_ID] = 0.0
            vocabulary = step.shape[1]
            scores, chosen = (scores.view(-1, 1) + step).view(batch, beam * vocabulary).topk(beam, dim=1)
            rows = (torch.arange(batch, device=source.device)[:, None] * beam + chosen // vocabulary).view(-1)
            following = (chosen % vocabulary).view(-1)
            written = torch.cat([written[rows], following[:, None]], 1)
            ended = ended[rows] | (following == END_ID)
            if bool(ended.all()):
                break
        lengths = (written[:, 1:] != PAD_ID).sum(1).clamp(min=1).view(batch, beam)
        best = (scores / lengths.float() ** alpha).argmax(1)
        return written.view(batch, beam, -1)[torch.arange(batch, device=source.device), best, 1:]


class GreedyTranslator(nn.Module):
    """What `dlzoo export` writes: source ids in, `steps` greedily decoded target ids out."""

    def __init__(self, model: Seq2SeqTransformer, steps: int):
        super().__init__()
        self.model, self.steps = model, steps

    def forward(self, source: torch.Tensor) -> torch.Tensor:
        return self.model.greedy(source, self.steps, stop_early=False)
