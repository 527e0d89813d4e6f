"""Class-conditional WGAN-GP (Gulrajani et al., 2017) with a spectrally normalised projection critic.

Two models, two optimizers, one engine: every batch takes one critic step on real images against generated ones;
every `n_critic`-th batch the generator takes a step too (`ctx.step` counts batches over the whole run, so resume
keeps the rhythm). The critic's loss is E[C(fake)] - E[C(real)] + lambda * gradient penalty, where the penalty
pushes the norm of the critic's input gradient towards 1 at random points between real and fake images.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from dlzoo.config import ModelConfig
from dlzoo.engine.optim import build_optimizer
from dlzoo.errors import UserError
from dlzoo.tasks.ema import started, weight_average
from dlzoo.tasks.generative import GenerativeConfig, GenerativeImageTask

if TYPE_CHECKING:
    from dlzoo.tasks.base import StepContext


@dataclass
class GANConfig:
    gp_weight: float = 10.0  # lambda
    n_critic: int = 5  # critic steps per generator step
    latent_dim: int = 64
    # Samples come from an exponential moving average of the generator's weights and batch-norm statistics, updated
    # after every generator step (0: from the generator itself): it averages away the step-to-step jitter of
    # adversarial training, which shows as speckled strokes.
    ema: float = 0.995


@dataclass
class ConditionalGANConfig(GenerativeConfig):
    generator: ModelConfig = field(default_factory=lambda: ModelConfig(name="cgan-generator"))
    critic: ModelConfig = field(default_factory=lambda: ModelConfig(name="cgan-critic"))
    gan: GANConfig = field(default_factory=GANConfig)


Critic = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def gradient_penalty(critic: Critic, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor,
                     mix: torch.Tensor | None = None) -> torch.Tensor:
    """mean over the batch of (||d critic(x_hat, y) / d x_hat||_2 - 1)^2, x_hat = mix * real + (1 - mix) * fake.

    `mix` (N, 1, 1, 1) is drawn uniformly from [0, 1) when not given. The graph is kept (create_graph) so the
    penalty can be back-propagated into the critic's weights.
    """
    if mix is None:
        mix = torch.rand(len(real), *([1] * (real.ndim - 1)), device=real.device)
    points = (mix * real.detach() + (1 - mix) * fake.detach()).requires_grad_(True)
    scores = critic(points, labels)
    (gradients,) = torch.autograd.grad(scores.sum(), points, create_graph=True)
    return (gradients.flatten(1).norm(2, dim=1) - 1).square().mean()


class ConditionalGANTask(GenerativeImageTask):
    main_metric = "wasserstein"
    model_kinds = {"generator": "gan-generator", "critic": "gan-critic"}
    model_args_set_by = {"generator": {"latent_dim": "gan.latent_dim"}}
    conditional = True
    data_model = "continuous: grey levels in [0, 1]; the generator ends in a sigmoid"
    optimizes_itself = True
    config: ConditionalGANConfig

    @classmethod
    def check_config(cls, config: ConditionalGANConfig) -> None:
        super().check_config(config)
        gan = config.gan
        if gan.n_critic < 1:
            raise UserError(f"gan.n_critic must be >= 1, got {gan.n_critic}")
        if gan.latent_dim < 1:
            raise UserError(f"gan.latent_dim must be >= 1, got {gan.latent_dim}")
        if gan.gp_weight < 0:
            raise UserError(f"gan.gp_weight must be >= 0, got {gan.gp_weight}")
        if not 0 <= gan.ema < 1:
            raise UserError(f"gan.ema is a decay in [0, 1), got {gan.ema}")
        if config.trainer.compile:
            raise UserError("trainer.compile is not supported for GANs: the gradient penalty needs a double "
                            "backward, which torch.compile cannot do")

    def build_models(self) -> dict[str, nn.Module]:
        generator = self.create_model(self.config.generator, latent_dim=self.config.gan.latent_dim)
        models = {"generator": generator, "critic": self.create_model(self.config.critic)}
        if self.config.gan.ema:
            # Frozen, so no optimizer sees it; a model of the task, so checkpoints and `dlzoo generate` have it.
            models["generator_ema"] = weight_average(generator, self.config.gan.ema)
        return models

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {name: build_optimizer(self.config.optim, [self.models[name]]) for name in ("critic", "generator")}

    @property
    def latent_dim(self) -> int:
        return self.config.gan.latent_dim

    def train_step(self, batch: Any, ctx: StepContext) -> dict[str, torch.Tensor]:
        real, labels = batch
        generator, critic, gan = ctx.models["generator"], ctx.models["critic"], self.config.gan
        with torch.no_grad():
            fake = generator(self.noise(len(real)), labels)
        # Real and fake in one forward: half the kernel launches on a GPU, bigger matrices on a CPU.
        real_score, fake_score = critic(torch.cat([real, fake]), torch.cat([labels, labels])).float().chunk(2)
        wasserstein = real_score.mean() - fake_score.mean()
        penalty = gradient_penalty(critic, real, fake, labels).float()
        critic_loss = gan.gp_weight * penalty - wasserstein
        ctx.optimize(critic_loss, "critic")
        if (ctx.step + 1) % gan.n_critic == 0:
            ctx.optimize(-critic(generator(self.noise(len(real)), labels), labels).float().mean(), "generator")
            if gan.ema:  # here, not in after_step: the average takes in the generator only when it has stepped
                self.models["generator_ema"].update_parameters(self.models["generator"])
        # Logged every batch (the engine averages each key over all batches): the critic's view of the gap.
        return {"loss": critic_loss.detach(), "wasserstein": wasserstein.detach(),
                "gradient_penalty": penalty.detach()}

    def evaluate(self, split: str) -> dict[str, float]:
        """The critic's estimate of the Wasserstein gap on held-out images (fixed noise), plus the judge's view.
        The fakes are the ones `sample` draws, from the generator's weight average once it has one, so this
        `wasserstein` can differ from training's, which measures the raw generator the critic trains against."""
        runtime = self.runtime
        totals = torch.zeros(2, device=runtime.device, dtype=torch.float64)  # sum of C(real) - C(fake), count
        for rows, generator in self.held_out_share(self.config.data.eval_batch_size):
            real, labels = self.test_x[rows], self.test_y[rows]
            fake = self.sample(len(real), labels, generator)
            totals[0] += (self.models["critic"](real, labels) - self.models["critic"](fake, labels)).sum()
            totals[1] += len(real)
        gap, count = runtime.all_reduce_sum(totals).tolist()
        return {"wasserstein": gap / count, **self.judge_metrics()}

    # --- generation -----------------------------------------------------------------------------------------
    pixel_values = "grey levels, as the generator's closing sigmoid gives them"

    def image_network(self) -> Drawing:
        """The generator's weight average once it has taken in a generator step, the generator before that."""
        average = self.models.get("generator_ema")
        return Drawing(average.module if average is not None and started(average) else self.models["generator"])


class Drawing(nn.Module):
    """A generator whose images come out as float32, whatever precision autocast computed them in."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.generator(z, labels).float()
