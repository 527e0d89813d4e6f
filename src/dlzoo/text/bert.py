"""BERT: a Transformer encoder over token, segment and position embeddings, pretrained by masked-language
modelling and next-sentence prediction, then fine-tuned with a classifier on its pooled `[CLS]` output.

The curriculum's BERT at its small size (d2l: 2 layers, 128 wide, 2 heads, feed-forward 256); pre-norm layers (a
LayerNorm before attention and before the feed-forward, one at the end), which train stably at a higher learning
rate than BERT's post-norm without a long warm-up. The masked-language head predicts only the masked positions
(15% of tokens): scoring every position against a vocabulary of thousands would be most of a step's work.

A BERT from the Hugging Face Hub (bert-base-chinese, `dlzoo.text.hub`) is post-norm: a LayerNorm on the embeddings
and after each residual sum, none at the end (`BertShape.post_norm`); its weights load into the same modules.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass
class BertShape:
    """What a BERT encoder is made of; a fine-tuning run keeps its pretrained run's, in its checkpoint's meta."""

    vocabulary_size: int
    hidden: int = 128
    layers: int = 2
    heads: int = 2
    feed_forward: int = 256
    max_tokens: int = 128  # positions it has embeddings for
    dropout: float = 0.1
    post_norm: bool = False  # BERT's own layout (the Hub's models); dlzoo's pretraining is pre-norm
    norm_eps: float = 1e-5  # the Hub's BERTs use 1e-12

    def as_dict(self) -> dict[str, int | float]:
        return asdict(self)


def segments_from_ids(ids: torch.Tensor, sep: int) -> torch.Tensor:
    """Segment ids (0: `[CLS] A [SEP]`, 1: what follows) found from the first `[SEP]` in each row: a classifier
    then reads pairs of texts from their ids alone, one input for `dlzoo export`."""
    is_sep = (ids == sep).long()
    return ((is_sep.cumsum(1) - is_sep) > 0).long()


class BertEncoder(nn.Module):
    def __init__(self, shape: BertShape):
        super().__init__()
        self.shape = shape
        self.token = nn.Embedding(shape.vocabulary_size, shape.hidden, padding_idx=0)
        self.segment = nn.Embedding(2, shape.hidden)
        self.position = nn.Embedding(shape.max_tokens, shape.hidden)
        # Post-norm normalises the embeddings before the first layer; pre-norm layers do it themselves.
        self.embedding_norm = nn.LayerNorm(shape.hidden, shape.norm_eps) if shape.post_norm else nn.Identity()
        self.embedding_dropout = nn.Dropout(shape.dropout)
        layer = nn.TransformerEncoderLayer(shape.hidden, shape.heads, shape.feed_forward, shape.dropout,
                                           activation="gelu", layer_norm_eps=shape.norm_eps, batch_first=True,
                                           norm_first=not shape.post_norm)
        # No nested tensors: a post-norm encoder in eval mode would return zeros at padded positions, unlike in
        # training, and pre-norm warns that it cannot use them.
        final_norm = None if shape.post_norm else nn.LayerNorm(shape.hidden, shape.norm_eps)
        self.layers = nn.TransformerEncoder(layer, shape.layers, norm=final_norm, enable_nested_tensor=False)
        # BERT's pooler: the [CLS] position through a dense layer and tanh, what sentence-level heads read.
        self.pooler = nn.Sequential(nn.Linear(shape.hidden, shape.hidden), nn.Tanh())
        self.apply(_bert_init)

    def forward(self, ids: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
        """(batch, tokens) ids (0 is padding) and segment ids to (batch, tokens, hidden)."""
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.embedding_norm(self.token(ids) + self.segment(segments) + self.position(positions))
        return self.layers(self.embedding_dropout(x), src_key_padding_mask=ids == 0)

    def pooled(self, states: torch.Tensor) -> torch.Tensor:
        return self.pooler(states[:, 0])


def _bert_init(module: nn.Module) -> None:
    """BERT's initialisation: normal(0, 0.02) weights, zero biases (LayerNorms keep ones and zeros)."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
    if isinstance(module, nn.Embedding) and module.padding_idx is not None:
        with torch.no_grad():
            module.weight[module.padding_idx].zero_()


class BertPretrainer(nn.Module):
    """The encoder with BERT's two pretraining heads: masked tokens (dense, GELU, LayerNorm, then the token
    embeddings transposed, as BERT ties them) and whether segment B follows segment A."""

    def __init__(self, shape: BertShape):
        super().__init__()
        self.encoder = BertEncoder(shape)
        self.transform = nn.Sequential(nn.Linear(shape.hidden, shape.hidden), nn.GELU(), nn.LayerNorm(shape.hidden))
        self.token_bias = nn.Parameter(torch.zeros(shape.vocabulary_size))
        self.next_sentence = nn.Linear(shape.hidden, 2)
        self.transform.apply(_bert_init)
        self.next_sentence.apply(_bert_init)

    def forward(self, ids: torch.Tensor, segments: torch.Tensor,
                masked: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits over the vocabulary at the `masked` positions (a boolean (batch, tokens) mask; rows in the
        order `ids[masked]` lists them), and (batch, 2) next-sentence logits (1: B follows A)."""
        states = self.encoder(ids, segments)
        token_logits = self.transform(states[masked]) @ self.encoder.token.weight.T + self.token_bias
        return token_logits, self.next_sentence(self.encoder.pooled(states))


class BertClassifier(nn.Module):
    """A pretrained (or new) encoder and a linear layer on its pooled `[CLS]`: texts, or pairs of texts joined by
    `[SEP]` (`WordPieces.encode`), as (batch, tokens) ids alone."""

    def __init__(self, shape: BertShape, num_classes: int, sep: int):
        super().__init__()
        self.sep = sep
        self.encoder = BertEncoder(shape)
        self.head = nn.Sequential(nn.Dropout(shape.dropout), nn.Linear(shape.hidden, num_classes))
        self.head.apply(_bert_init)

    def head_parameters(self) -> list[nn.Parameter]:
        """The layer new to fine-tuning, which `model.head_lr_scale` may train faster than the pretrained rest."""
        return list(self.head.parameters())

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        states = self.encoder(ids, segments_from_ids(ids, self.sep))
        return self.head(self.encoder.pooled(states))
