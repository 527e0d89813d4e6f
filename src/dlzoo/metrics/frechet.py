"""The Fréchet distance between two sets of feature vectors, each summarised by a Gaussian (mean, covariance).

    d^2 = |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2))

This is the formula of FID; what makes a number comparable is the feature extractor, so dlzoo always names the
features a distance was computed in (e.g. "digits classifier penultimate layer") and never calls it FID.
"""

from __future__ import annotations

import torch


def _psd_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(matrix)
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T


def frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """Squared Fréchet distance between the Gaussians fitted to two (N, D) feature sets, in float64.

    tr((S_a S_b)^(1/2)) is computed as the sum of square roots of the eigenvalues of S_a^(1/2) S_b S_a^(1/2), a
    symmetric PSD matrix with the same eigenvalues; this avoids the complex round-off of a general matrix square root
    (scipy.linalg.sqrtm) that FID implementations have to clean up.
    """
    if features_a.ndim != 2 or features_b.ndim != 2 or features_a.shape[1] != features_b.shape[1]:
        raise ValueError(f"feature sets must be (N, D) with the same D, got {tuple(features_a.shape)} and "
                         f"{tuple(features_b.shape)}")
    if min(len(features_a), len(features_b)) < 2:
        raise ValueError("a Fréchet distance needs at least two samples per set")
    a, b = features_a.detach().double().cpu(), features_b.detach().double().cpu()
    mean_term = (a.mean(0) - b.mean(0)).square().sum()
    dims = a.shape[1]
    cov_a, cov_b = torch.cov(a.T).reshape(dims, dims), torch.cov(b.T).reshape(dims, dims)  # 1-d: a scalar
    root_a = _psd_sqrt(cov_a)
    cross = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp(min=0).sqrt().sum()
    return max(0.0, float(mean_term + cov_a.trace() + cov_b.trace() - 2 * cross))
