"""`dlzoo bench generative`: the generative recipes measured by classifiers trained on real data.

Digits (always): the `digits` classifier is trained first (or `judge_digits=RUN_DIR` reuses one), then
- `cgan-digits` with `judge=` that run: conditional accuracy and the Fréchet distance in the classifier's
  penultimate features, beside the real-train vs real-held-out floor (NOT comparable to Inception FID);
- `vae-digits` twice in this process, the convolutional VAE and the curriculum's MLP VAE, same data, optimiser,
  schedule and epochs: held-out negative ELBO and importance-weighted NLL (k=100) in nats per image, binarised data.
Targets: conditional accuracy >= 0.95 and Fréchet <= 5 x floor for the cGAN; conv VAE NLL < MLP VAE NLL.
`fashion=true` adds the same on Fashion-MNIST, judged by the `fashion` recipe (no targets: reported as measured).

Everything is configurable because a GAN is slow on a small CPU, e.g.
    dlzoo bench generative gan_epochs=20 vae_epochs=10 threads=1
"""

from __future__ import annotations

import os
import time
from typing import Any

import torch

from dlzoo.bench import benchmark
from dlzoo.bench.common import machine, require_at_least, torch_threads, train_recipe
from dlzoo.data.images import DIGIT_CLASSES, FASHION_CLASSES
from dlzoo.errors import UserError
from dlzoo.metrics.judge import Judge

GENERATED = ("conditional_accuracy", "frechet", "frechet_floor", "frechet_ratio", "judge_real_accuracy")


def _load() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def _train(recipe: str, overrides: list[str], threads: int | None) -> dict[str, Any]:
    extra = ["trainer.device=cpu"] + ([f"trainer.threads={threads}"] if threads is not None else [])
    summary = train_recipe(recipe, [*overrides, *extra])
    return {"recipe": recipe, "overrides": overrides, "run_dir": summary["run_dir"], "epochs": summary["epochs"],
            "train_seconds": summary["train_seconds"], "wall_seconds": summary["wall_seconds"],
            "test": summary["metrics"]["test"]}


def _judge(recipe: str, given: str, threads: int | None) -> dict[str, Any]:
    if given:
        return {"recipe": recipe, "run_dir": given, "reused": True}
    return _train(recipe, [], threads)


def _check_judge(option: str, run_dir: str, classes: list[str]) -> None:
    """A judge run given as an option, checked before any training: a missing one, one that is no classifier or
    one of other classes would otherwise be met only when its cGAN starts, after the digits part has trained for
    the fashion judge."""
    if run_dir:
        try:
            Judge(run_dir, "cpu").check_classes(classes)
        except UserError as error:
            raise UserError(f"{option}={run_dir}: {error}") from None


def _data_set(name: str, judge_recipe: str, judge_run: str, gan_epochs: int, vae_epochs: int,
              threads: int | None) -> dict[str, Any]:
    judge = _judge(judge_recipe, judge_run, threads)
    with_judge = [f"judge={judge['run_dir']}"]
    gan = _train(f"cgan-{name}", [f"trainer.epochs={gan_epochs}", "trainer.eval_every=5", *with_judge], threads)
    # The IW estimate (k=100 decodes per image) is the costly part of a VAE evaluation: evaluate at the end only.
    vae_common = [f"trainer.epochs={vae_epochs}", f"trainer.eval_every={vae_epochs}", *with_judge]
    vaes = {model: _train(f"vae-{name}", [f"model.name={model}", *vae_common], threads)
            for model in ("vae-conv", "vae-mlp")}
    return {"judge": judge, "cgan": gan, "vae": vaes}


@benchmark("generative", "cGAN conditional accuracy + classifier-feature Fréchet; conv vs MLP VAE held-out NLL")
def run(gan_epochs: int = 150, vae_epochs: int = 40, threads: int | None = None, fashion: bool = False,
        fashion_gan_epochs: int = 10, fashion_vae_epochs: int = 20, judge_digits: str = "",
        judge_fashion: str = "") -> dict[str, Any]:
    require_at_least(1, gan_epochs=gan_epochs, vae_epochs=vae_epochs, threads=threads,
                     fashion_gan_epochs=fashion_gan_epochs, fashion_vae_epochs=fashion_vae_epochs)
    _check_judge("judge_digits", judge_digits, DIGIT_CLASSES)
    if fashion:
        _check_judge("judge_fashion", judge_fashion, FASHION_CLASSES)
    load_before, started = _load(), time.perf_counter()
    digits = _data_set("digits", "digits", judge_digits, gan_epochs, vae_epochs, threads)
    gan, conv, mlp = digits["cgan"]["test"], digits["vae"]["vae-conv"]["test"], digits["vae"]["vae-mlp"]["test"]
    result: dict[str, Any] = {
        "benchmark": "generative",
        "data": "mnist5k: 4,000 train / 1,000 held-out real digits; VAEs on binarised pixels (dynamic in training, "
                "one fixed-seed binarisation of the held-out set)",
        "features": "Fréchet distances are in the judge classifier's penultimate features: NOT comparable to FID",
        "digits": {
            "cgan": {key: gan[key] for key in ("wasserstein", *GENERATED) if key in gan},
            "vae_nats_per_image": {model: {"nll_iw_k100": digits["vae"][model]["test"]["nll_iw"],
                                           "neg_elbo": digits["vae"][model]["test"]["neg_elbo"],
                                           "frechet_ratio": digits["vae"][model]["test"].get("frechet_ratio")}
                                   for model in digits["vae"]},
            "runs": digits,
        },
        "targets": {
            "cgan conditional accuracy >= 0.95": gan["conditional_accuracy"] >= 0.95,
            "cgan Fréchet <= 5 x real-vs-real floor": gan["frechet"] <= 5 * gan["frechet_floor"],
            "conv VAE held-out NLL < MLP VAE's": conv["nll_iw"] < mlp["nll_iw"],
        },
    }
    if fashion:
        result["fashion"] = _data_set("fashion", "fashion", judge_fashion, fashion_gan_epochs, fashion_vae_epochs,
                                      threads)
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["load_average_1min"] = {"before": load_before, "after": _load(), "cpus": os.cpu_count()}
    with torch_threads(threads):  # names the thread count the runs trained on (their trainer.threads), not torch's
        result["machine"] = machine(torch.device("cpu"))
    return result
