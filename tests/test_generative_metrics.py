"""The measuring instruments of the generative recipes, checked against values worked out by hand."""

import math

import pytest
import torch
from torch import nn

from dlzoo.data.images import load_image_arrays
from dlzoo.errors import UserError
from dlzoo.metrics.frechet import frechet_distance
from dlzoo.metrics.judge import Judge
from dlzoo.models import create
from dlzoo.models.generative import VAE
from dlzoo.tasks.gan import gradient_penalty
from dlzoo.tasks.generative import real_images
from dlzoo.tasks.vae import bernoulli_log_likelihood, log_weights


class LinearCritic(nn.Module):
    """C(x, y) = w . x + b, whose input gradient is w everywhere."""

    def __init__(self, weight: list[float]):
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(weight))

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return images.flatten(1) @ self.weight + 1.0


def test_gradient_penalty_of_a_linear_critic_and_its_gradient():
    critic = LinearCritic([3.0, 4.0])
    real, fake, labels = torch.randn(5, 2), torch.randn(5, 2), torch.zeros(5, dtype=torch.long)
    penalty = gradient_penalty(critic, real, fake, labels)
    assert penalty.item() == pytest.approx((5 - 1) ** 2)  # ||w|| = 5 at every point
    penalty.backward()  # d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||
    assert torch.allclose(critic.weight.grad, torch.tensor([2 * 4 * 3 / 5, 2 * 4 * 4 / 5]))


def test_gradient_penalty_at_the_interpolated_points():
    # C(x) = |x|^2 has gradient 2x: at x_hat = mix * real + (1 - mix) * fake the norms are worked out by hand.
    critic = lambda images, labels: images.square().flatten(1).sum(1)
    real = torch.tensor([[1.0, 0.0], [3.0, 4.0], [0.0, 2.0]])
    fake = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.0, -2.0]])
    mix = torch.tensor([[0.5], [1.0], [0.25]])
    # x_hat = [0.5, 0] -> |2x| = 1;  [3, 4] -> 10;  [0, -1] -> 2
    expected = ((1 - 1) ** 2 + (10 - 1) ** 2 + (2 - 1) ** 2) / 3
    assert gradient_penalty(critic, real, fake, torch.zeros(3, dtype=torch.long), mix).item() == pytest.approx(expected)


def test_gradient_penalty_of_the_spectral_norm_critic_matches_finite_differences():
    torch.manual_seed(0)
    critic = create("cgan-critic", width=4).double().eval()  # eval: spectral norm stops its power iteration
    point, step = torch.rand(1, 1, 28, 28, dtype=torch.double), 1e-6
    # Central differences along every pixel, all in one batch (the critic treats samples independently).
    shifts = (torch.eye(28 * 28, dtype=torch.double) * step).view(-1, 1, 28, 28)
    labels = torch.full((28 * 28,), 3)
    with torch.no_grad():
        numeric = (critic(point + shifts, labels) - critic(point - shifts, labels)) / (2 * step)
    penalty = gradient_penalty(critic, point, point, labels[:1]).item()
    assert penalty == pytest.approx((numeric.norm().item() - 1) ** 2, rel=1e-6)


def test_frechet_distance_by_hand_identical_and_noise():
    a = torch.tensor([[-1.0], [1.0]])  # mean 0, variance 2
    b = 2 * a + 3  # mean 3, variance 8: d = 3^2 + 2 + 8 - 2 sqrt(2 * 8) = 11
    assert frechet_distance(a, b) == pytest.approx(11.0)
    torch.manual_seed(0)
    features = torch.randn(500, 64) @ torch.randn(64, 64)
    assert frechet_distance(features, features) < 1e-6 * features.var(0).sum().item()
    assert frechet_distance(features, torch.randn(500, 64)) > 0.5 * features.var(0).sum().item()
    with pytest.raises(ValueError):
        frechet_distance(features, torch.randn(500, 3))


def test_judge_gives_zero_for_the_held_out_set_itself_and_a_large_distance_for_noise(digits_run):
    arrays = load_image_arrays("mnist5k")
    real = real_images(arrays, torch.device("cpu"))
    judge = Judge(digits_run, "cpu")
    judge.set_real(real["train_x"], real["test_x"], real["test_y"], arrays.classes)
    assert judge.sample_size == 1000 and judge.floor > 0
    itself = judge.measure(real["test_x"], real["test_y"])
    assert itself["frechet"] < 1e-6 * judge.floor
    assert itself["conditional_accuracy"] == pytest.approx(judge.real_accuracy) and judge.real_accuracy > 0.5
    torch.manual_seed(0)
    noise = judge.measure(torch.rand(1000, 1, 28, 28), real["test_y"])
    assert noise["frechet_ratio"] > 10
    with pytest.raises(UserError, match="classes"):
        judge.set_real(real["train_x"], real["test_x"], real["test_y"], [str(i) for i in range(9)])


def constant_vae(logits: torch.Tensor) -> VAE:
    """q(z|x) is the prior and p(x|z) ignores z: then every importance weight is p(x), known in closed form."""
    vae = create("vae-mlp", hidden=(8,), latent_dim=3)
    with torch.no_grad():
        for module in vae.modules():
            if isinstance(module, nn.Linear):
                module.weight.zero_()
                module.bias.zero_()
        vae.decoder[-2].bias.copy_(logits.flatten())
    return vae


def test_iw_bound_and_elbo_equal_the_exact_likelihood_when_it_is_known():
    torch.manual_seed(0)
    logits = torch.randn(1, 1, 28, 28)
    binary = torch.bernoulli(torch.full((4, 1, 28, 28), 0.3))
    exact = -bernoulli_log_likelihood(logits.expand_as(binary), binary)  # -log p(x) per image
    weights = log_weights(constant_vae(logits), binary, samples=100, generator=torch.Generator().manual_seed(0))
    assert weights.shape == (100, 4)
    assert torch.allclose(-weights.mean(0), exact, rtol=1e-5)
    assert torch.allclose(-(weights.logsumexp(0) - math.log(100)), exact, rtol=1e-5)


def test_iw_bound_is_never_looser_than_the_elbo():
    torch.manual_seed(0)
    vae = create("vae-conv", width=4)
    binary = torch.bernoulli(torch.full((6, 1, 28, 28), 0.2))
    with torch.no_grad():
        weights = log_weights(vae, binary, samples=100, generator=torch.Generator().manual_seed(1))
    neg_elbo, nll_iw = -weights.mean(0), -(weights.logsumexp(0) - math.log(100))
    assert (nll_iw <= neg_elbo + 1e-4).all() and (nll_iw < neg_elbo).any()
