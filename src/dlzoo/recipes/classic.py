"""The book's classic CNNs on the full Fashion-MNIST, at the book's settings: one recipe per network.

Paper-faithful on purpose: the book's resolution, batch size and learning rate, plain SGD (no momentum, no weight
decay, no schedule), Xavier-initialised weights, pixels in [0, 1] without normalisation or augmentation, 10 epochs.
What dlzoo changes is only how the work is done: the data set sits on the device as one tensor and every batch is
resized there (to 96 or 224 px) instead of one image at a time in DataLoader workers, and the 96 and 224 px networks
train in bf16 autocast with channels-last activations wherever bf16 is native (a GPU, or a CPU with AVX512-BF16/AMX;
fp32 elsewhere): on one core of this project's AMD EPYC, 2.1-2.9x the textbook loop's throughput (docs/classic.md).
The 28 px LeNets keep the engine's default (fp32 on a CPU), in which their results were measured.
`book_accuracy` is the test accuracy the book prints after its 10 epochs: the bar each must reach.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from dlzoo.config import OptimConfig, TrainerConfig
from dlzoo.recipes import Recipe, register_recipe
from dlzoo.tasks.image_classification import (
    AugmentConfig,
    ImageClassification,
    ImageClassificationConfig,
    ImageDataConfig,
    ImageModelConfig,
)


@dataclass(frozen=True)
class ClassicSetting:
    recipe: str
    model: str
    resolution: int
    batch_size: int
    lr: float
    book_accuracy: float | None  # None: the book prints no number for it
    summary: str
    reference: str = ""  # measured result (command and machine), or empty


CLASSICS = (
    ClassicSetting("lenet", "lenet", 28, 256, 0.9, 0.779, "LeNet-5 (sigmoid, avg-pool), 28 px",
                   "0.818 test acc (book 0.779) in 59.9 s: dlzoo train lenet trainer.threads=1, 2-core AMD EPYC CPU "
                   "beside another 1-thread job"),
    ClassicSetting("lenet-bn", "lenet-bn", 28, 256, 1.0, None, "LeNet-5 with batch norm, 28 px",
                   "0.874 test acc in 52.9 s: dlzoo train lenet-bn trainer.threads=1, 2-core AMD EPYC CPU beside "
                   "another 1-thread job"),
    ClassicSetting("alexnet", "alexnet", 224, 128, 0.01, 0.883, "AlexNet, 224 px",
                   "0.884 test acc (book 0.883) in 9,909 s: dlzoo train alexnet trainer.threads=2, bf16, "
                   "2-core AMD EPYC CPU"),
    ClassicSetting("vgg11-small", "vgg11-small", 224, 128, 0.05, 0.920, "VGG-11 with channels / 4, 224 px",
                   "0.917 test acc (book 0.920, not reached; 0.917 again at trainer.seed=1) in 9,230 s: dlzoo train "
                   "vgg11-small trainer.threads=2, bf16, 2-core AMD EPYC CPU"),
    ClassicSetting("nin", "nin", 224, 128, 0.1, 0.790, "Network in Network, 224 px",
                   "0.661 test acc (book 0.790, not reached; 0.867 at trainer.seed=1, 0.7899 at trainer.seed=2) in "
                   "9,512 s: dlzoo train nin trainer.threads=2, bf16, 2-core AMD EPYC CPU"),
    ClassicSetting("googlenet", "googlenet", 96, 128, 0.1, 0.886, "GoogLeNet (Inception), 96 px",
                   "0.889 test acc (book 0.886) in 4,049 s: dlzoo train googlenet trainer.threads=2, bf16, 2-core AMD "
                   "EPYC CPU, idle"),
    ClassicSetting("resnet18", "resnet18", 96, 256, 0.05, 0.893, "ResNet-18, 96 px",
                   "0.923 test acc (book 0.893) in 6,756 s: dlzoo train resnet18 trainer.threads=1, bf16, 2-core AMD "
                   "EPYC CPU beside another 1-thread job"),
    ClassicSetting("densenet", "densenet", 96, 256, 0.1, 0.885, "DenseNet (4 dense blocks of 4), 96 px",
                   "0.912 test acc (book 0.885) in 4,458 s: dlzoo train densenet trainer.threads=1, bf16, 2-core AMD "
                   "EPYC CPU beside another 1-thread job"),
)


def classic_config(setting: ClassicSetting) -> ImageClassificationConfig:
    upscaled = setting.resolution > 28
    return ImageClassificationConfig(
        trainer=TrainerConfig(epochs=10, precision="auto-bf16" if upscaled else "auto"),
        optim=OptimConfig(name="sgd", lr=setting.lr, momentum=0.0, nesterov=False, weight_decay=0.0,
                          schedule="constant", warmup=0.0),
        # Evaluation batches shrink with resolution: 256 images at 224 px already take ~1 GB of activations.
        data=ImageDataConfig(source="fashion-mnist", preprocess="resize", resolution=setting.resolution,
                             batch_size=setting.batch_size, eval_batch_size=256 if upscaled else 1000,
                             augment=AugmentConfig(enabled=False)),
        model=ImageModelConfig(name=setting.model, channels_last=upscaled),
    )


def book_setting(recipe: str) -> ClassicSetting:
    return next(setting for setting in CLASSICS if setting.recipe == recipe)


for _setting in CLASSICS:
    _bar = f"; book: {_setting.book_accuracy:.3f} after 10 epochs" if _setting.book_accuracy else ""
    register_recipe(Recipe(
        name=_setting.recipe,
        task=ImageClassification,
        default_config=partial(classic_config, _setting),
        summary=f"the book's {_setting.summary} on Fashion-MNIST: SGD lr {_setting.lr}, batch "
                f"{_setting.batch_size}, 10 epochs{_bar}",
        reference=_setting.reference,
    ))
