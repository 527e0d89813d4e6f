"""`finetune`: transfer learning as the curriculum teaches it on its hot-dog pictures: torchvision's ResNet-18 with
its ImageNet weights and a new last layer for your classes, trained at the curriculum's settings (SGD, lr 5e-5 and
ten times that for the new layer, weight decay 1e-3, batch 128, 5 epochs, 224 px, random flips and scales).

Your pictures: `dlzoo train finetune data.path=DIR` with DIR/train/<class>/* and DIR/test/<class>/* (the `folder`
source, in colour), or `data.source=picture-csv` for Kaggle's CSV layouts. The training pictures are read from disk
every epoch (`data.stream=true`), so a set larger than memory trains too. The ImageNet weights are downloaded once
(45 MB, into torch's cache); `model.pretrained=false` trains the same network from scratch, the curriculum's
comparison.
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


def finetune_config() -> ImageClassificationConfig:
    return ImageClassificationConfig(
        trainer=TrainerConfig(epochs=5, precision="auto"),
        optim=OptimConfig(name="sgd", lr=5e-5, momentum=0.0, weight_decay=1e-3, schedule="constant"),
        data=ImageDataConfig(source="folder", preprocess="resize", resolution=224, colour=True, stream=True,
                             batch_size=128, eval_batch_size=128, augment=AugmentConfig(flip=True, scale=0.2)),
        model=ImageModelConfig(name="resnet18-imagenet", pretrained=True, head_lr_scale=10.0),
    )


register_recipe(Recipe(
    name="finetune",
    task=ImageClassification,
    default_config=finetune_config,
    summary="transfer learning: ImageNet ResNet-18 fine-tuned on your own pictures (a folder or Kaggle CSV)"))
