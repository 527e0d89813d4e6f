"""Line recognizers: a picture of a line of text in, one row of class scores per horizontal step out (for CTC)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from dlzoo.models.layers import Normalize, conv_bn_relu, require_positive
from dlzoo.models.registry import register_model

# What reads the convolutions' columns in order: a BiLSTM, or 1-d convolutions.
SequenceLayer = Literal["lstm", "conv"]

# Ink lines are mostly black: mean and std of the composed training lines' pixels (measured, rounded).
LINE_MEAN, LINE_STD = (0.12,), (0.3,)


class LineCRNN(nn.Module):
    """Convolutions over a line `height` pixels high, the height folded into channels, then a bidirectional LSTM
    (or 1-d convolutions) along the width and a linear layer: (N, C, height, W) -> logits (N, W // 2, classes).

    The width is halved once (`frame_stride` = 2), the height three times: a digit about 22 pixels tall spans
    6-10 frames, so even two narrow touching 1s get frames of their own and a blank between them."""

    frame_stride = 2

    def __init__(self, num_classes: int = 11, in_channels: int = 1, width: int = 16, hidden: int = 96,
                 height: int = 32, sequence: SequenceLayer = "lstm", dropout: float = 0.0):
        super().__init__()
        require_positive(width=width, hidden=hidden)
        if height % 8:
            raise ValueError(f"line height must be a multiple of 8, got {height}")
        if sequence not in ("lstm", "conv"):
            raise ValueError(f"sequence must be 'lstm' or 'conv', got {sequence!r}")
        self.height = height
        self.features = nn.Sequential(
            Normalize(LINE_MEAN * in_channels, LINE_STD * in_channels),
            *conv_bn_relu(in_channels, width), nn.MaxPool2d(2),                 # H/2, W/2
            *conv_bn_relu(width, 2 * width), nn.MaxPool2d((2, 1)),              # H/4
            *conv_bn_relu(2 * width, 4 * width), *conv_bn_relu(4 * width, 4 * width),
            nn.MaxPool2d((2, 1)),                                               # H/8
            *conv_bn_relu(4 * width, 6 * width),
        )
        folded = 6 * width * (height // 8)
        self.sequence = sequence
        if sequence == "lstm":
            self.context = nn.LSTM(folded, hidden, batch_first=True, bidirectional=True)
        else:  # two 1-d convolutions 5 frames wide: faster on a CPU, a receptive field of ~ a digit and a half
            self.context = nn.Sequential(nn.Conv1d(folded, 2 * hidden, 5, padding=2), nn.BatchNorm1d(2 * hidden),
                                         nn.ReLU(inplace=True), nn.Conv1d(2 * hidden, 2 * hidden, 5, padding=2),
                                         nn.BatchNorm1d(2 * hidden), nn.ReLU(inplace=True))
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(2 * hidden, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-2] != self.height:
            raise ValueError(f"expected lines {self.height} pixels high, got {images.shape[-2]}")
        features = self.features(images)  # (N, C, H/8, W/2)
        n, c, h, w = features.shape
        frames = features.reshape(n, c * h, w)
        if self.sequence == "lstm":
            frames, _ = self.context(frames.transpose(1, 2))
        else:
            frames = self.context(frames).transpose(1, 2)
        return self.head(self.dropout(frames))


@register_model("line-crnn", input_size=(1, 32, 128), kind="line-recognizer")
def line_crnn(num_classes: int = 11, in_channels: int = 1, width: int = 16, hidden: int = 96, height: int = 32,
              sequence: SequenceLayer = "lstm", dropout: float = 0.0) -> nn.Module:
    """CRNN line recognizer: 5 conv layers, BiLSTM (or 1-d convs) along the width, per-frame logits for CTC."""
    return LineCRNN(num_classes, in_channels, width, hidden, height, sequence, dropout)
