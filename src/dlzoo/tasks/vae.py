"""Variational autoencoders on binarised 28x28 images, measured in nats per image on held-out data.

Data model: each pixel is a Bernoulli variable. Training images are binarised afresh in every batch (a pixel of grey
level g in [0, 1] is 1 with probability g: "dynamic binarisation", as in the IWAE paper); the held-out images are
binarised once with a fixed seed, so every evaluation scores the same binary images. On these binary images
-log p(x) is a true negative log-likelihood in nats, comparable with published binarised-MNIST figures.

Per held-out image we report, from the same k samples z_i ~ q(z|x) (log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x)):
- `neg_elbo`  = -mean_i log w_i, the negative evidence lower bound (what training minimises);
- `nll_iw`    = -(logsumexp_i log w_i - log k), the importance-weighted bound of Burda et al. (2016), a tighter
  estimate of -log p(x) that approaches it as k grows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from dlzoo.config import ModelConfig
from dlzoo.engine.best import Goal
from dlzoo.errors import UserError
from dlzoo.models.generative import VAE
from dlzoo.tasks.generative import (
    BINARY_SEED,
    GenerativeConfig,
    GenerativeImageTask,
    decode_examples,
)

if TYPE_CHECKING:
    from dlzoo.engine.runtime import Runtime
    from dlzoo.tasks.base import StepContext

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


@dataclass
class VAEConfig(GenerativeConfig):
    model: ModelConfig = field(default_factory=lambda: ModelConfig(name="vae-conv"))
    # Importance samples per held-out image for `nll_iw` (the issue asks for k >= 100).
    iw_samples: int = 100


def bernoulli_log_likelihood(logits: torch.Tensor, binary: torch.Tensor) -> torch.Tensor:
    """log p(x|z) per image, summed over pixels."""
    return -F.binary_cross_entropy_with_logits(logits.float(), binary, reduction="none").flatten(1).sum(1)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per image, in closed form."""
    return 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum(1)


def log_weights(model: VAE, binary: torch.Tensor, samples: int, generator: torch.Generator) -> torch.Tensor:
    """log w (samples, N) of `samples` draws z ~ q(z|x) for each image of the batch."""
    mu, logvar = model.encode(binary)
    noise = torch.randn((samples, *mu.shape), device=mu.device, generator=generator)
    z = mu + noise * (0.5 * logvar).exp()
    log_q = -(0.5 * noise.square() + 0.5 * logvar + HALF_LOG_2PI).sum(-1)
    log_prior = -(0.5 * z.square() + HALF_LOG_2PI).sum(-1)
    logits = model.decode(z.flatten(0, 1))
    targets = binary.unsqueeze(0).expand(samples, *binary.shape).flatten(0, 1)
    log_likelihood = bernoulli_log_likelihood(logits, targets).view(samples, -1)
    return log_likelihood + log_prior - log_q


class VAETask(GenerativeImageTask):
    main_metric = "nll_iw"
    model_kinds = {"model": "vae"}
    data_model = "binarised: Bernoulli pixels; training images re-binarised each batch, held-out ones once (fixed seed)"
    config: VAEConfig

    @classmethod
    def metric_goals(cls, config: VAEConfig) -> dict[str, Goal]:
        return {"neg_elbo": "min", "nll_iw": "min", **super().metric_goals(config)}

    @classmethod
    def check_config(cls, config: VAEConfig) -> None:
        super().check_config(config)
        if config.iw_samples < 1:
            raise UserError(f"iw_samples must be >= 1, got {config.iw_samples}")

    def setup(self, runtime: Runtime) -> None:
        super().setup(runtime)
        fixed = torch.Generator().manual_seed(BINARY_SEED)  # on the CPU: the same binary images on every device
        self.test_binary = torch.bernoulli(self.test_x.cpu(), generator=fixed).to(runtime.device)

    def build_models(self) -> dict[str, nn.Module]:
        model = self.create_model(self.config.model)
        if not isinstance(model, VAE):
            raise UserError(f"model '{self.config.model.name}' is not a VAE; use vae-mlp or vae-conv")
        return {"vae": model}

    def train_step(self, batch: Any, ctx: StepContext) -> dict[str, torch.Tensor]:
        images, _ = batch
        binary = torch.bernoulli(images)  # dynamic binarisation, from the global RNG (resume stays exact)
        logits, mu, logvar = ctx.models["vae"](binary)
        reconstruction = -bernoulli_log_likelihood(logits, binary).mean()
        kl = gaussian_kl(mu, logvar).mean()
        return {"loss": reconstruction + kl, "reconstruction": reconstruction, "kl": kl}

    def evaluate(self, split: str) -> dict[str, float]:
        runtime, samples = self.runtime, self.config.iw_samples
        model: VAE = self.models["vae"]
        totals = torch.zeros(3, device=runtime.device, dtype=torch.float64)  # -sum ELBO, -sum log p(x), count
        # Images per forward so that a chunk decodes about 20,000 images: bounded memory whatever k is.
        for rows, generator in self.held_out_share(max(1, 20_000 // samples)):
            binary = self.test_binary[rows]
            weights = log_weights(model, binary, samples, generator)
            totals[0] -= weights.mean(0).sum()
            totals[1] -= (weights.logsumexp(0) - math.log(samples)).sum()
            totals[2] += len(binary)
        neg_elbo, nll, count = runtime.all_reduce_sum(totals).tolist()
        return {"neg_elbo": neg_elbo / count, "nll_iw": nll / count, **self.judge_metrics()}

    # --- generation -----------------------------------------------------------------------------------------
    pixel_values = ("each pixel's probability of being white under the model (Bernoulli means, not binary draws: "
                    "the usual way to show them)")

    @property
    def latent_dim(self) -> int:
        return self.models["vae"].latent_dim

    def image_network(self) -> PixelMeans:
        return PixelMeans(self.models["vae"])

    def extra_grids(self, generator: torch.Generator) -> dict[str, tuple[torch.Tensor, int]]:
        """Held-out images over their reconstructions, and a walk in latent space between two of them."""
        model: VAE = self.models["vae"]
        pixel_means = PixelMeans(model)
        images, labels = decode_examples(self.meta["held_out_examples"])
        images = images.to(self.runtime.device)
        with torch.no_grad():
            mu, _ = model.encode(images)
            reconstructions = pixel_means(mu)
            # Two stored examples of different classes, picked by the generator (so --seed changes the pair).
            first = int(torch.randint(len(images), (1,), generator=generator, device=generator.device))
            others = (labels != labels[first]).nonzero().flatten()
            second = int(others[int(torch.randint(len(others), (1,), generator=generator, device=generator.device))])
            steps = torch.linspace(0, 1, 10, device=mu.device).unsqueeze(1)
            path = pixel_means((1 - steps) * mu[first] + steps * mu[second])
        return {"reconstructions": (torch.cat([images, reconstructions]), len(images)),
                "interpolation": (path, len(path))}


class PixelMeans(nn.Module):
    """A VAE's decoder as images: z (N, latent_dim) -> the Bernoulli means (N, C, 28, 28) of p(x|z), float32. Only
    the decoder is registered, so that an exported program holds its weights and not the encoder's."""

    def __init__(self, vae: VAE):
        super().__init__()
        self.decoder = vae.decoder
        self._decode = vae.decode

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self._decode(z).float())
