"""Generative models for 28x28 grey images: VAEs (the curriculum's MLP and a convolutional one) and the generator
and critic of a class-conditional WGAN-GP.

Every VAE has the same interface, so the task, the likelihood estimates and `dlzoo generate` treat them alike:
`encode(x) -> (mu, logvar)` of a diagonal Gaussian q(z|x), and `decode(z) -> logits` of independent Bernoulli pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from dlzoo.models.layers import require_positive
from dlzoo.models.registry import register_model

IMAGE_SIZE = 28


class VAE(nn.Module):
    """An encoder that outputs 2 * latent numbers (mean and log-variance) and a decoder from latent to logits."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, latent_dim: int):
        super().__init__()
        self.encoder, self.decoder, self.latent_dim = encoder, decoder, latent_dim

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(images).float().chunk(2, dim=1)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Bernoulli logits, shaped like the images: (N, C, 28, 28)."""
        return self.decoder(z)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One reparameterised sample z ~ q(z|x): returns (logits of p(x|z), mu, logvar)."""
        mu, logvar = self.encode(images)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        return self.decode(z), mu, logvar


@register_model("vae-mlp", kind="vae")
def vae_mlp(num_classes: int = 10, in_channels: int = 1, latent_dim: int = 20,
            hidden: tuple[int, ...] | list[int] = (400, 400)) -> VAE:
    """The curriculum's MLP VAE: 784-400-400 encoder, latent 20, mirrored decoder (num_classes unused)."""
    require_positive(latent_dim=latent_dim, hidden=hidden)
    pixels = in_channels * IMAGE_SIZE * IMAGE_SIZE
    widths = [pixels, *hidden]
    encoder: list[nn.Module] = [nn.Flatten()]
    for width_in, width_out in zip(widths[:-1], widths[1:], strict=True):
        encoder += [nn.Linear(width_in, width_out), nn.ReLU(inplace=True)]
    encoder.append(nn.Linear(widths[-1], 2 * latent_dim))
    back = [latent_dim, *reversed(hidden)]
    decoder: list[nn.Module] = []
    for width_in, width_out in zip(back[:-1], back[1:], strict=True):
        decoder += [nn.Linear(width_in, width_out), nn.ReLU(inplace=True)]
    decoder += [nn.Linear(back[-1], pixels), nn.Unflatten(1, (in_channels, IMAGE_SIZE, IMAGE_SIZE))]
    return VAE(nn.Sequential(*encoder), nn.Sequential(*decoder), latent_dim)


@register_model("vae-conv", kind="vae")
def vae_conv(num_classes: int = 10, in_channels: int = 1, latent_dim: int = 20, width: int = 32) -> VAE:
    """Convolutional VAE: three stride-2 convs (28->14->7->4) and their transposes, latent 20 (num_classes unused)."""
    require_positive(latent_dim=latent_dim, width=width)
    flat = 4 * width * 4 * 4
    act = nn.SiLU
    encoder = nn.Sequential(
        nn.Conv2d(in_channels, width, 4, stride=2, padding=1), act(),                  # 28 -> 14
        nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), act(),                    # 14 -> 7
        nn.Conv2d(2 * width, 4 * width, 3, stride=2, padding=1), act(),                # 7 -> 4
        nn.Flatten(), nn.Linear(flat, 2 * latent_dim),
    )
    decoder = nn.Sequential(
        nn.Linear(latent_dim, flat), act(), nn.Unflatten(1, (4 * width, 4, 4)),
        nn.ConvTranspose2d(4 * width, 2 * width, 3, stride=2, padding=1), act(),       # 4 -> 7
        nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1), act(),           # 7 -> 14
        nn.ConvTranspose2d(width, in_channels, 4, stride=2, padding=1),                # 14 -> 28
    )
    return VAE(encoder, decoder, latent_dim)


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm whose scale and shift are looked up per class (label embeddings, as in SN-GAN and BigGAN): the
    label steers every layer of the generator, not only its input."""

    no_weight_decay = True  # the scales and shifts are a norm's, per class (engine/optim.py)

    def __init__(self, num_classes: int, channels: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.scale, self.shift = nn.Embedding(num_classes, channels), nn.Embedding(num_classes, channels)
        nn.init.ones_(self.scale.weight)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.norm(x) * self.scale(labels)[:, :, None, None] + self.shift(labels)[:, :, None, None]


class ConditionalGenerator(nn.Module):
    """z and a learned label embedding, concatenated, -> 7x7 maps -> two transposed convs -> image in [0, 1];
    the batch norms are class-conditional."""

    def __init__(self, num_classes: int, in_channels: int, latent_dim: int, width: int, embed_dim: int):
        super().__init__()
        self.num_classes, self.latent_dim = num_classes, latent_dim
        self.embed = nn.Embedding(num_classes, embed_dim)
        self.project = nn.Sequential(nn.Linear(latent_dim + embed_dim, 2 * width * 7 * 7, bias=False),
                                     nn.Unflatten(1, (2 * width, 7, 7)))
        self.norm1 = ConditionalBatchNorm2d(num_classes, 2 * width)
        self.up1 = nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1, bias=False)         # 7 -> 14
        self.norm2 = ConditionalBatchNorm2d(num_classes, width)
        self.up2 = nn.ConvTranspose2d(width, in_channels, 4, stride=2, padding=1)                   # 14 -> 28

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        x = self.project(torch.cat([z, self.embed(labels)], dim=1))
        x = self.up1(F.relu(self.norm1(x, labels)))
        return torch.sigmoid(self.up2(F.relu(self.norm2(x, labels))))


class ProjectionCritic(nn.Module):
    """Spectrally normalised conv critic with a projection head (Miyato & Koyama, 2018): the score is
    w.h(x) + <embed(y), h(x)>, so the label acts through an embedding compared with the image's features."""

    def __init__(self, num_classes: int, in_channels: int, width: int):
        super().__init__()
        self.features = nn.Sequential(
            spectral_norm(nn.Conv2d(in_channels, width, 4, stride=2, padding=1)), nn.LeakyReLU(0.2),   # 28 -> 14
            spectral_norm(nn.Conv2d(width, 2 * width, 4, stride=2, padding=1)), nn.LeakyReLU(0.2),     # 14 -> 7
            spectral_norm(nn.Conv2d(2 * width, 4 * width, 3, stride=2, padding=1)), nn.LeakyReLU(0.2),  # 7 -> 4
        )
        self.score = spectral_norm(nn.Linear(4 * width, 1))
        self.embed = spectral_norm(nn.Embedding(num_classes, 4 * width))

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.features(images).sum(dim=(2, 3))  # sum pooling, as in the SN-GAN critics
        return self.score(h).squeeze(1) + (self.embed(labels) * h).sum(dim=1)


@register_model("cgan-generator", kind="gan-generator")
def cgan_generator(num_classes: int = 10, in_channels: int = 1, latent_dim: int = 64, width: int = 32,
                   embed_dim: int = 32) -> ConditionalGenerator:
    """Class-conditional generator: (z, label embedding) -> 7x7 -> 14x14 -> 28x28 image in [0, 1]."""
    require_positive(latent_dim=latent_dim, width=width, embed_dim=embed_dim)
    return ConditionalGenerator(num_classes, in_channels, latent_dim, width, embed_dim)


@register_model("cgan-critic", kind="gan-critic")
def cgan_critic(num_classes: int = 10, in_channels: int = 1, width: int = 16) -> ProjectionCritic:
    """Class-conditional WGAN critic: three spectrally normalised convs, label projection head; no batch norm."""
    require_positive(width=width)
    return ProjectionCritic(num_classes, in_channels, width)
