"""Semantic segmentation recipes: an FCN (ResNet-18 features, bilinear-initialised transposed conv).

- `digit-scenes`: real MNIST digits in coloured ink on crops of real photos (`dlzoo.data.scenes`), 11 classes
  (background and the ten digits), trained from scratch on the CPU in minutes; the head reads stride 8.
- `fcn-voc`: the curriculum's FCN on Pascal VOC 2012 (21 classes), at its settings: ImageNet-pretrained backbone,
  stride 32, 320x480 crops, SGD lr 1e-3, weight decay 1e-3, 5 epochs, batch 32. VOC and the ImageNet weights are
  downloaded on first use (2 GB and 45 MB); a GPU is the place to train it.
"""

from dlzoo.config import OptimConfig, TrainerConfig
from dlzoo.recipes import Recipe, register_recipe
from dlzoo.tasks.segmentation import Segmentation, SegmentationConfig, SegmentationDataConfig, SegmentationModelConfig


def digit_scenes_config() -> SegmentationConfig:
    return SegmentationConfig(
        trainer=TrainerConfig(epochs=10, precision="auto"),
        optim=OptimConfig(name="adamw", lr=2e-3, weight_decay=1e-4, schedule="onecycle", warmup=0.1),
        data=SegmentationDataConfig(source="digit-scenes", batch_size=64, eval_batch_size=100),
        model=SegmentationModelConfig(name="fcn", args={"stride": 8}),
    )


def fcn_voc_config() -> SegmentationConfig:
    return SegmentationConfig(
        trainer=TrainerConfig(epochs=5, precision="auto"),
        optim=OptimConfig(name="sgd", lr=1e-3, weight_decay=1e-3, momentum=0.0, schedule="constant"),
        data=SegmentationDataConfig(source="voc2012", batch_size=32, crop=[320, 480]),
        model=SegmentationModelConfig(name="fcn", args={"stride": 32}, pretrained=True),
    )


register_recipe(Recipe(
    name="digit-scenes",
    task=Segmentation,
    default_config=digit_scenes_config,
    summary="semantic segmentation: FCN (ResNet-18, stride 8) on real digits pasted on real photo crops",
    reference="test mIoU 0.789 (pixel accuracy 0.985; stride 32, the curriculum's head: 0.391; all background: "
              "0.084) in 411 s train (dlzoo bench segmentation threads=2, 2-core Intel Xeon CPU)"))

register_recipe(Recipe(
    name="fcn-voc",
    task=Segmentation,
    default_config=fcn_voc_config,
    summary="the curriculum's FCN on Pascal VOC 2012: ImageNet ResNet-18, stride 32, 320x480 crops (downloads)"))
