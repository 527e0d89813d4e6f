"""Line recognition: a strip of handwriting in, its digits out, trained with CTC (no segmentation needed).

Training lines are composed on the fly from real digits (`dlzoo.reader.compose_lines`): each batch is a fresh
set of lines drawn from the training digits, so an "epoch" is `data.lines_per_epoch` lines. The test split is a
fixed set of lines composed from the held-out digits with a fixed seed: it measures how well the recognizer reads
digits it never saw. The reader (`dlzoo read`) crops each line of a picture, scales it so its digits are
`data.digit_height` pixels tall in a strip `data.height` high, and decodes what this network outputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from dlzoo.config import MAX_PIXELS, DataConfig, ModelConfig, Pixels, PositiveFloat, RecipeConfig
from dlzoo.data.images import DIGIT_CLASSES, load_image_arrays
from dlzoo.engine.best import Goal
from dlzoo.errors import UserError
from dlzoo.models import create
from dlzoo.reader.compose_lines import LineComposer, LineStyle
from dlzoo.reader.ctc import BLANK, NUM_CLASSES, digit_errors, greedy_texts
from dlzoo.reader.read import LINE_RECOGNIZER
from dlzoo.tasks.base import Task, input_name, predict_inputs
from dlzoo.vision.io import IN_MEMORY_PICTURES, Picture

if TYPE_CHECKING:
    from dlzoo.engine.runtime import Runtime
    from dlzoo.tasks.base import StepContext

# Test lines are composed, and scored, this many at a time. A constant, not `data.eval_batch_size`: the chunks'
# draws from the generator make the lines, so another size would make another test set.
TEST_LINES_PER_CHUNK = 100


@dataclass
class LineDataConfig(DataConfig):
    source: str = "mnist5k"
    lines_per_epoch: int = 8192
    max_digits: int = 8
    height: int = 32  # pixels of the strip the network reads
    digit_height: float = 23.0  # the reader scales each line so its digits are this tall (chosen on training digits)
    eval_lines: int = 1000  # test lines composed from the held-out digits
    eval_seed: int = 1234
    style: LineStyle = field(default_factory=LineStyle)


@dataclass
class LineModelConfig(ModelConfig):
    name: str = "line-crnn"
    channels_last: bool = True  # faster convolutions on CPUs (oneDNN) and GPUs


@dataclass
class LineRecognitionConfig(RecipeConfig):
    data: LineDataConfig = field(default_factory=LineDataConfig)
    model: LineModelConfig = field(default_factory=LineModelConfig)


class LineBatches:
    """Which digits make each line of a batch: (picks, lengths), a pure function of (seed, epoch, rank).
    Drawing the pictures themselves happens in `train_step`, with torch's global generator."""

    def __init__(self, composer: LineComposer, lines: int, batch_size: int, max_digits: int, seed: int,
                 rank: int = 0, world_size: int = 1):
        self.composer, self.batch_size, self.max_digits = composer, batch_size, max_digits
        self.seed, self.rank = seed, rank
        self.batches = max(1, lines // (batch_size * world_size))
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.batches

    def __iter__(self):
        generator = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) * 64 + self.rank)
        for _ in range(self.batches):
            yield self.composer.random_picks(self.batch_size, self.max_digits, generator)


def ctc_loss(logits: torch.Tensor, targets: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """CTC loss of logits (N, T, 11) against digit targets (concatenated values 0-9): each line's loss divided by
    its number of digits, averaged over the lines (torch's `reduction="mean"`), so long and short lines weigh
    alike per digit."""
    log_probs = logits.float().log_softmax(-1).transpose(0, 1)  # (T, N, C), as torch's CTC wants
    frames = torch.full((logits.shape[0],), logits.shape[1], dtype=torch.long, device=logits.device)
    return F.ctc_loss(log_probs, targets + 1, frames, lengths, blank=BLANK, reduction="mean", zero_infinity=True)


class LineRecognition(Task):
    main_metric = "exact"
    model_kinds = {"model": "line-recognizer"}
    model_args_set_by = {"model": {"height": "data.height"}}  # the strips the data draws and the network reads
    checkpoint_meta = {"kind": str, "classes": list[str], "height": Pixels,
                       "digit_height": PositiveFloat}  # without `kind`, read takes it for a classifier
    config: LineRecognitionConfig

    @classmethod
    def metric_goals(cls, config: LineRecognitionConfig) -> dict[str, Goal]:
        return {"exact": "max", "digit_accuracy": "max", "loss": "min"}

    @classmethod
    def check_config(cls, config: LineRecognitionConfig) -> None:
        super().check_config(config)
        data = config.data
        if data.height % 8 or not 16 <= data.height <= MAX_PIXELS:
            raise UserError(f"data.height must be a multiple of 8 from 16 to {MAX_PIXELS}, got {data.height}")
        for name, value in vars(data.style).items():
            if isinstance(value, list) and (len(value) != 2 or value[0] > value[1]):  # drawn from as (low, high)
                raise UserError(f"data.style.{name} is a range [low, high], got {value}")
            chance = name in ("touching", "low_res")  # the other numbers are +- spreads or sizes
            if isinstance(value, float) and not 0 <= value <= (1 if chance else math.inf):
                raise UserError(f"data.style.{name} must be {'a chance in [0, 1]' if chance else '>= 0'}, got {value}")
        low, high = data.style.digit_height
        if not 0 < low <= data.digit_height <= high <= data.height:
            raise UserError(f"data.digit_height ({data.digit_height}) must lie within data.style.digit_height "
                            f"[{low}, {high}], inside the strip (data.height={data.height})")
        if data.max_digits < 1 or data.lines_per_epoch < 1 or data.eval_lines < 1:
            raise UserError("data.max_digits, data.lines_per_epoch and data.eval_lines must be at least 1")

    def setup(self, runtime: Runtime) -> None:
        data = self.config.data
        self.runtime = runtime
        arrays = load_image_arrays(data.source, data.path).limit(data.limit)
        device = runtime.device

        def composer(images, labels) -> LineComposer:
            return LineComposer(torch.tensor(images, device=device), torch.tensor(labels, device=device),
                                data.height, data.style)

        # Training lines only ever use the training digits; the test lines only the held-out ones.
        self.train_composer = composer(arrays.train_images, arrays.train_labels)
        self.test_lines = self._compose_test_lines(composer(arrays.test_images, arrays.test_labels))
        self.notes = [f"data: {arrays.source}: {data.lines_per_epoch:,} lines an epoch composed from "
                      f"{len(arrays.train_images):,} training digits; {data.eval_lines:,} test lines from "
                      f"{len(arrays.test_images):,} held-out digits"]
        self.meta = {"kind": LINE_RECOGNIZER, "classes": DIGIT_CLASSES, "height": data.height,
                     "digit_height": data.digit_height, "source": arrays.source}
        self.models = self.build_models()
        for model in self.models.values():
            model.to(device)

    def _compose_test_lines(self, composer: LineComposer) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Fixed lines of held-out digits (same style as training), in chunks so the canvases stay small."""
        data = self.config.data
        generator = torch.Generator().manual_seed(data.eval_seed)
        picks, lengths = composer.random_picks(data.eval_lines, data.max_digits, generator)
        chunks = []
        for start in range(0, data.eval_lines, TEST_LINES_PER_CHUNK):
            end = start + TEST_LINES_PER_CHUNK
            chunks.append(composer.compose(picks[start:end], lengths[start:end], generator=generator))
        return chunks

    def build_models(self) -> dict[str, nn.Module]:
        args = {**self.config.model.args, "height": self.meta["height"]}
        net = create(self.config.model.name, num_classes=NUM_CLASSES, in_channels=1, **args)
        return {"net": net.to(memory_format=torch.channels_last) if self.config.model.channels_last else net}

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """Per-frame logits (N, T, 11) of lines (N, 1, height, W) in [0, 1]; what the reader calls."""
        if self.config.model.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.models["net"](images)

    def train_loader(self) -> LineBatches:
        runtime, data = self.runtime, self.config.data
        return LineBatches(self.train_composer, data.lines_per_epoch, data.batch_size, data.max_digits,
                           runtime.seed, runtime.rank, runtime.world_size)

    def train_step(self, batch: Any, ctx: StepContext) -> dict[str, torch.Tensor]:
        picks, lengths = batch
        images, targets, lengths = self.train_composer.compose(picks, lengths)
        if self.config.model.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return {"loss": ctc_loss(ctx.models["net"](images), targets, lengths)}

    def evaluate(self, split: str) -> dict[str, float]:
        runtime = self.runtime
        totals = torch.zeros(5, dtype=torch.float64)  # loss sum, exact, edit errors, digits, lines
        for images, targets, lengths in self.test_lines[runtime.rank::runtime.world_size]:
            logits = self.logits(images)
            totals[0] += float(ctc_loss(logits, targets, lengths)) * len(lengths)
            truths = _texts(targets, lengths)
            for read, truth in zip(greedy_texts(logits), truths, strict=True):
                totals[1] += read == truth
                totals[2] += digit_errors(read, truth)
                totals[3] += len(truth)
            totals[4] += len(lengths)
        loss, exact, errors, digits, lines = runtime.all_reduce_sum(totals.to(runtime.device)).tolist()
        return {"loss": loss / lines, "exact": exact / lines, "digit_accuracy": 1 - errors / digits}

    # --- prediction -----------------------------------------------------------------------------------------
    predicts_pictures = True

    def predict(self, inputs: list[Picture], out: str | None = None) -> list[dict[str, Any]]:
        """Files, uint8 RGB/grey arrays or PIL images (`load_picture`), in one list."""
        from dlzoo.reader.lines import LineReader

        reader = LineReader(self)
        return [{"path": input_name(item), **reader.read(item).to_dict()}
                for item in predict_inputs(inputs, IN_MEMORY_PICTURES)]

    def describe(self, record: dict[str, Any]) -> str:
        return f"{record['path'] or 'picture'}: {record['text'] or '(no digits found)'}"

    def export_program(self) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
        """The line network alone: strips (batch, 1, height, width) in, per-frame logits out. Finding the lines of
        a page and making strips of them is the reader's (`dlzoo read`), which has no single network."""
        return self.models["net"], (torch.zeros(2, 1, self.meta["height"], 64),)

    def check_export_format(self, fmt: str) -> None:
        # torch.export unrolls an LSTM over the example's frames: such a pt2 program would take one width only.
        if fmt == "pt2" and any(isinstance(module, nn.RNNBase) for module in self.models["net"].modules()):
            raise UserError("this line recognizer's LSTM exports to ONNX only (a pt2 program would read strips of "
                            "one width): add --format onnx, or train with model.args.sequence=conv")

    def export_dynamic_shapes(self, example: tuple[torch.Tensor, ...]) -> tuple[dict[int, Any], ...]:
        # Any width the reader pads a strip to: a multiple of 16 px.
        (shapes,) = super().export_dynamic_shapes(example)
        return ({**shapes, 3: 16 * torch.export.Dim("strip_width", min=1, max=4096)},)

    def export_contract(self) -> dict[str, Any]:
        height, digit_height = self.meta["height"], self.meta["digit_height"]
        stride = getattr(self.models["net"], "frame_stride", 2)
        return {"preparation": f"strips (batch, 1, {height}, width): one line of digits each, light ink on black in "
                               f"[0, 1], scaled so that its digits are about {digit_height:g} px tall and centred "
                               f"top to bottom, padded on the right with black to a width that is a multiple of 16 "
                               f"px",
                "outputs": f"logits (batch, width / {stride}, {NUM_CLASSES}): a row per {stride} px of the strip "
                           f"over the blank (index {BLANK}) and the digits 0-9 (indices {BLANK + 1}-{BLANK + 10}); "
                           f"read a line as CTC does: the best index of each row, repeats merged, blanks dropped"}


def _texts(targets: torch.Tensor, lengths: torch.Tensor) -> list[str]:
    values = targets.tolist()
    texts, start = [], 0
    for length in lengths.tolist():
        texts.append("".join(str(v) for v in values[start: start + length]))
        start += length
    return texts
