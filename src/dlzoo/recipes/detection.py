"""`digit-boxes`: the curriculum's TinySSD finding digits on `digit-scenes` canvases (real MNIST digits in coloured
ink on crops of real photos), each digit's ink box its object; scored by COCO mAP on canvases of held-out digits.

Anchor sizes are the curriculum's design scaled to the objects: its sizes are for bananas a fifth to nearly the
whole of a 256 px picture; a digit here is 19-47% of a 64 px canvas tall and narrower than tall (a 1 much narrower),
so the smallest scales are smaller and every cell's first ratio (width / height, used with each size) is a digit's.
"""

from dlzoo.config import OptimConfig, TrainerConfig
from dlzoo.data.scenes import SceneDataConfig
from dlzoo.recipes import Recipe, register_recipe
from dlzoo.tasks.detection import Detection, DetectionConfig, DetectionModelConfig

DIGIT_SIZES = [[0.15, 0.22], [0.3, 0.38], [0.45, 0.55], [0.6, 0.7], [0.8, 0.9]]
DIGIT_RATIOS = [0.6, 1.0, 0.3]


def digit_boxes_config() -> DetectionConfig:
    return DetectionConfig(
        trainer=TrainerConfig(epochs=20, precision="auto"),
        optim=OptimConfig(name="adamw", lr=3e-3, weight_decay=1e-4, schedule="onecycle", warmup=0.1),
        data=SceneDataConfig(batch_size=32, scenes_per_epoch=4096, eval_batch_size=100),
        model=DetectionModelConfig(name="tiny-ssd", args={"sizes": DIGIT_SIZES, "ratios": DIGIT_RATIOS}),
    )


register_recipe(Recipe(
    name="digit-boxes",
    task=Detection,
    default_config=digit_boxes_config,
    summary="object detection: the curriculum's TinySSD finding real digits on real photo crops (COCO mAP)",
    reference="test mAP 0.689 (mAP@0.5 0.904) in 437 s train (dlzoo bench detection threads=2 curriculum=false); "
              "at 10 epochs 0.639 / 0.887, the curriculum's loss 0.577 / 0.829 (dlzoo bench detection threads=2 "
              "epochs=10); 2-core Intel Xeon CPU"))
