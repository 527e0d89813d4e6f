"""The fast Fashion-MNIST recipes: `fashion` for a small CPU, `fashion-speedrun` for one GPU.

Both follow cifar10-airbench's playbook: the data set sits on the device as one tensor (`ImageClassification`),
augmentation is batched on the device, the network is a small conv-pool net (`fashion-net`) in channels_last,
trained by one-cycle SGD with Nesterov momentum and label smoothing, and each test image is scored with its mirror
image too (flip TTA; Fashion-MNIST's clothes are left-right symmetric classes).

`fashion` is sized for throughput on 2 CPU cores at the native 28 px: widths 16-32-64, few epochs, only flips as
augmentation (translations slow learning down more than a short run can win back).
`fashion-speedrun` spends a GPU's abundance: a 4x wider, deeper net, more epochs, random translations, bf16
autocast (trainer.precision=auto) and an EMA of the weights for evaluation.
"""

from __future__ import annotations

from dlzoo.config import OptimConfig, TrainerConfig
from dlzoo.recipes import Recipe, register_recipe
from dlzoo.tasks.image_classification import (
    AugmentConfig,
    ImageClassification,
    ImageClassificationConfig,
    ImageDataConfig,
    ImageModelConfig,
)


def fashion_config() -> ImageClassificationConfig:
    return ImageClassificationConfig(
        trainer=TrainerConfig(epochs=3, precision="auto-bf16"),
        optim=OptimConfig(name="sgd", lr=0.2, momentum=0.9, nesterov=True, weight_decay=5e-4,
                          schedule="onecycle", warmup=0.2),
        data=ImageDataConfig(source="fashion-mnist", preprocess="resize", batch_size=256,
                             augment=AugmentConfig(flip=True)),
        model=ImageModelConfig(name="fashion-net", args={"width": 16, "depth": 1}, channels_last=True),
        label_smoothing=0.1,
        tta_flip=True,
    )


def speedrun_config() -> ImageClassificationConfig:
    return ImageClassificationConfig(
        trainer=TrainerConfig(epochs=16, precision="auto-bf16"),
        optim=OptimConfig(name="sgd", lr=0.4, momentum=0.9, nesterov=True, weight_decay=5e-4,
                          schedule="onecycle", warmup=0.2),
        data=ImageDataConfig(source="fashion-mnist", preprocess="resize", batch_size=512, eval_batch_size=2500,
                             augment=AugmentConfig(flip=True, pad=2)),
        model=ImageModelConfig(name="fashion-net", args={"width": 64, "depth": 2}, channels_last=True),
        label_smoothing=0.2,
        tta_flip=True,
        ema_decay=0.95,  # every 5 steps: about 0.99 per step, a window of ~100 steps
        ema_start=0.5,
        ema_every=5,
    )


register_recipe(Recipe(
    name="fashion",
    task=ImageClassification,
    default_config=fashion_config,
    summary="Fashion-MNIST at 28 px, fast on a CPU: conv-pool net, flip augmentation + TTA, one-cycle SGD",
))

register_recipe(Recipe(
    name="fashion-speedrun",
    task=ImageClassification,
    default_config=speedrun_config,
    summary="Fashion-MNIST speedrun for one GPU: wider conv-pool net, flips + translations, bf16, EMA, flip TTA",
))
