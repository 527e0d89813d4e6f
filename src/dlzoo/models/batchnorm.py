"""Batch normalisation written out by hand, as the curriculum teaches it, but numerically the same layer as
`nn.BatchNorm1d`/`nn.BatchNorm2d`: same parameters, same buffers (so state dicts load either way), same running
statistics (momentum 0.1 on the *unbiased* batch variance, where the book's copy uses 0.9 on the biased one).

    training:   y = (x - mean_batch) / sqrt(var_batch + eps) * weight + bias
                running <- (1 - momentum) * running + momentum * batch statistic
    evaluation: the same with the running statistics
"""

from __future__ import annotations

import torch
from torch import nn


class BatchNorm(nn.Module):
    """Normalise (N, C) or (N, C, H, W) inputs per channel; a learnable scale and shift per channel."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        # Buffers, not parameters: saved in state dicts and moved with .to(), but never touched by the optimizer.
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim not in (2, 4) or x.shape[1] != self.num_features:
            raise ValueError(f"BatchNorm({self.num_features}) expects (N, {self.num_features}) or "
                             f"(N, {self.num_features}, H, W), got {tuple(x.shape)}")
        # Statistics in fp32 even under bf16/fp16 autocast, as torch's own batch norm computes them.
        x32 = x.float()
        dims = (0,) if x.ndim == 2 else (0, 2, 3)
        shape = (1, -1) if x.ndim == 2 else (1, -1, 1, 1)
        if self.training:
            count = x32.numel() // self.num_features
            if count == 1:  # one value has no spread: torch refuses it too, rather than learn a variance of 0
                raise ValueError(f"Expected more than 1 value per channel when training, got input size "
                                 f"{tuple(x.shape)}")
            mean = x32.mean(dims)
            var = x32.var(dims, unbiased=False)
            with torch.no_grad():
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(var * count / (count - 1), self.momentum)
                self.num_batches_tracked += 1
        else:
            mean, var = self.running_mean, self.running_var
        normalised = (x32 - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        return (normalised * self.weight.view(shape) + self.bias.view(shape)).to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"
