"""Judging generated images with a classifier trained on real ones (a `digits` or `fashion` run).

- conditional accuracy: the share of images generated for class c that the classifier assigns to c;
- a Fréchet distance between generated and real held-out images in the classifier's penultimate-layer features,
  beside the same distance between real training and real held-out images of the same count (the floor: what
  sampling noise alone gives). It is NOT comparable to FID, which uses Inception-v3 features on ImageNet photos.

Any image-classification run works, as long as its network is an nn.Sequential ending in its final nn.Linear (the
convention of dlzoo's classifiers): the features are that layer's input, read with a hook during `task.logits` (so
the classifier sees generated images through its own preprocessing, and a weight average is used where the
classifier would use one).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from dlzoo.errors import UserError
from dlzoo.metrics.frechet import frechet_distance

FEATURES = "penultimate-layer features of the judge classifier (not Inception: not comparable to FID)"


def final_linear_layers(models: dict[str, nn.Module]) -> list[nn.Linear]:
    """The final nn.Linear of every nn.Sequential among a task's models, looking inside wrappers that keep the
    network as `.module` (a weight average, DDP): whichever of them `task.logits` runs, its features are read."""
    layers = []
    for model in models.values():
        network = getattr(model, "module", model)
        if isinstance(network, nn.Sequential) and isinstance(network[-1], nn.Linear):
            layers.append(network[-1])
    return layers


class Judge:
    def __init__(self, classifier_run: str | Path, device: str = "auto"):
        from dlzoo.runs import load_for_inference, open_run

        run = open_run(classifier_run)
        task = load_for_inference(run, device)
        self.final_layers = final_linear_layers(task.models)
        if not hasattr(task, "logits") or not self.final_layers:
            raise UserError(f"{classifier_run} is a '{run.recipe.name}' run; the judge must be an image classifier "
                            "whose network ends in a linear layer (e.g. a digits or fashion run)")
        self.task, self.recipe = task, run.recipe.name
        # As named: a kept checkpoint (RUN/checkpoints/epoch-NNNN) judges, not the run's latest, so say which.
        self.run_dir = str(classifier_run)
        self.classes: list[str] = list(task.meta["classes"])
        self.test_features: torch.Tensor | None = None

    def check_classes(self, classes: list[str]) -> None:
        """Refuse to judge images of other classes than the classifier's (a fashion judge of digits)."""
        if list(classes) != self.classes:
            raise UserError(f"the judge ({self.recipe}) knows the classes {self.classes}, but the generated images "
                            f"are of {list(classes)}; judge with a classifier trained on the same data")

    def logits_and_features(self, images: torch.Tensor, batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and penultimate features (on the CPU) of images (N, 1, H, W) in [0, 1]."""
        captured: list[torch.Tensor] = []

        def keep_first(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            if not captured:  # with test-time flipping the classifier runs twice: keep the unflipped features
                captured.append(args[0].detach().float().flatten(1).cpu())

        device = self.task.runtime.device
        logits, features = [], []
        handles = [layer.register_forward_pre_hook(keep_first) for layer in self.final_layers]
        try:
            with torch.no_grad():
                for chunk in images.split(batch_size):
                    captured.clear()
                    logits.append(self.task.logits(chunk.to(device).float()).float().cpu())
                    if not captured:
                        raise UserError(f"the judge ({self.recipe}) computed logits without its final linear layer; "
                                        "its penultimate features cannot be read")
                    features.append(captured[0])
        finally:
            for handle in handles:
                handle.remove()
        return torch.cat(logits), torch.cat(features)

    def set_real(self, train_images: torch.Tensor, test_images: torch.Tensor, test_labels: torch.Tensor,
                 classes: list[str]) -> None:
        """Fix the held-out reference and measure the floor: first n training images vs the n held-out ones."""
        self.check_classes(classes)
        self.sample_size = min(len(train_images), len(test_images))
        test_logits, self.test_features = self.logits_and_features(test_images)
        self.real_accuracy = float((test_logits.argmax(1) == test_labels.cpu()).float().mean())
        _, train_features = self.logits_and_features(train_images[: self.sample_size])
        self.floor = frechet_distance(train_features, self.test_features)

    def measure(self, images: torch.Tensor, labels: torch.Tensor | None) -> dict[str, float]:
        """Fréchet distance of generated images to the held-out set, the floor, and (given the labels the images
        were generated for) the conditional accuracy."""
        if self.test_features is None:
            raise RuntimeError("call set_real() before measure()")
        logits, features = self.logits_and_features(images)
        distance = frechet_distance(features, self.test_features)
        metrics = {"frechet": distance, "frechet_floor": self.floor,
                   "frechet_ratio": distance / self.floor if self.floor > 0 else float("inf"),
                   "judge_real_accuracy": self.real_accuracy}
        if labels is not None:
            metrics["conditional_accuracy"] = float((logits.argmax(1) == labels.cpu()).float().mean())
        return metrics
