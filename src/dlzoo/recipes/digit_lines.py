"""`digit-lines`: a CRNN that reads a whole line of handwritten digits at once, trained with CTC.

The reader's answer to touching and overlapping digits: no segmentation into single digits, so no crop ever carries
a neighbour's strokes. Lines of 1-8 digits are composed on the fly from the 4,000 mnist5k training digits (close,
touching or overlapping neighbours in half the gaps, scale, aspect, baseline, rotation, slant, elastic distortion,
stroke thickness, blur, lost resolution, contrast and noise); the test split is 1,000 lines of the 1,000 held-out
digits (fixed seed).
`dlzoo read RUN_DIR picture.png` reads with it; `dlzoo bench reader recipe=digit-lines` measures it.
"""

from dlzoo.config import OptimConfig, TrainerConfig
from dlzoo.reader.compose_lines import LineStyle
from dlzoo.recipes import Recipe, register_recipe
from dlzoo.tasks.line_recognition import LineDataConfig, LineModelConfig, LineRecognition, LineRecognitionConfig


def digit_lines_config() -> LineRecognitionConfig:
    return LineRecognitionConfig(
        trainer=TrainerConfig(epochs=160, grad_clip=5.0, precision="auto-bf16"),
        optim=OptimConfig(name="adamw", lr=3e-3, weight_decay=1e-4, schedule="onecycle", warmup=0.1),
        data=LineDataConfig(batch_size=64, lines_per_epoch=4096,
                            style=LineStyle(elastic=1.0, aspect=0.15)),
        model=LineModelConfig(name="line-crnn", args={"width": 16, "hidden": 96, "dropout": 0.2}),
    )


register_recipe(Recipe(
    name="digit-lines",
    task=LineRecognition,
    default_config=digit_lines_config,
    summary="lines of handwritten digits: CRNN (convs + BiLSTM) with CTC on lines composed from mnist5k",
    reference="exact reads 0.946 apart / 0.864 touching (per digit 0.985 / 0.967); with a digits run reading along "
              "(--classifier) 0.956 / 0.862 (dlzoo bench reader run_dir=RUN [classifier_run=DIGITS_RUN] threads=1, "
              "500+500 held-out pictures); 0.855 of 1,000 held-out test lines; 4,481 s train, 1 thread on a 2-core "
              "AMD EPYC CPU beside another 1-thread job"))
