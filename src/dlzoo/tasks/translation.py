"""Translation: a Transformer encoder-decoder (`dlzoo.text.seq2seq`) writes a target text for each source text.

The pairs (`dlzoo.data.parallel`: CC-CEDICT's Chinese words and idioms with an English gloss, d2l's English-French
sentences, or your own tab-separated file) are cut into characters or jieba words (`dlzoo.text.tokens`), each
side's frequent training tokens make its vocabulary, and the test pairs are held out before anything is learned.
Training reads each target after `<bos>` and learns every next token, `<eos>` last (teacher forcing); evaluation
writes the test translations greedily and scores them with corpus BLEU-4 and exact match, besides the next-token
loss and accuracy.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dlzoo.config import PositiveInt, RecipeConfig
from dlzoo.data.images import split_fingerprint
from dlzoo.data.parallel import ParallelDataConfig, load_parallel
from dlzoo.data.tensors import drop_short_last
from dlzoo.engine.best import Goal
from dlzoo.errors import UserError
from dlzoo.metrics.translation import TranslationScores
from dlzoo.tasks.base import Task
from dlzoo.tasks.text_classification import records_per_line
from dlzoo.text.batches import LengthBatches
from dlzoo.text.seq2seq import (
    BEGIN,
    BEGIN_ID,
    END,
    END_ID,
    UNKNOWN_ID,
    GreedyTranslator,
    Seq2SeqModelConfig,
    Seq2SeqTransformer,
)
from dlzoo.text.subwords import CONTINUES, Subwords, learn_pieces, words_of
from dlzoo.text.tokens import (
    PAD,
    UNKNOWN,
    TokenLevel,
    build_vocabulary,
    encode,
    jieba_version,
    padded,
    tokenize_all,
    trim,
)

if TYPE_CHECKING:
    from dlzoo.engine.runtime import Runtime
    from dlzoo.tasks.base import StepContext


TargetLevel = Literal["char", "word", "subword"]


@dataclass
class TranslationDataConfig(ParallelDataConfig):
    # source (cedict, fra-eng, parallel-text with data.path=FILE), test_fraction, split_seed and reverse: see
    # ParallelDataConfig.
    test_fraction: float = 0.05
    source_tokens: TokenLevel = "char"  # char or word (jieba's words; English words and punctuation apart)
    # char, word, or subword: words, the rarer ones cut into pieces learned from the training targets
    # (`dlzoo.text.subwords`), so that no word needs to be written as <unk>
    target_tokens: TargetLevel = "word"
    min_count: int = 2  # rarer training tokens read as unknown
    max_vocabulary: int = 30_000  # of each side
    max_tokens: int = 32  # source tokens read
    max_target_tokens: int = 24  # target tokens written at most, <eos> included
    batch_size: int = 128


@dataclass
class TranslationConfig(RecipeConfig):
    data: TranslationDataConfig = field(default_factory=TranslationDataConfig)
    model: Seq2SeqModelConfig = field(default_factory=Seq2SeqModelConfig)
    label_smoothing: float = 0.1
    # Translations written greedily (1), or by a beam search keeping this many: in evaluation (`dlzoo eval RUN
    # beam=4` scores a trained run so), predict and `translate`. An export writes greedily.
    beam: int = 1


class Translation(Task):
    main_metric = "bleu"
    evaluation_keys = ("beam", "data.eval_batch_size")
    checkpoint_meta = {"source_vocabulary": list[str], "target_vocabulary": list[str], "source_tokens": TokenLevel,
                       "target_tokens": TargetLevel, "max_tokens": PositiveInt, "max_target_tokens": PositiveInt}
    config: TranslationConfig

    @classmethod
    def check_config(cls, config: TranslationConfig) -> None:
        super().check_config(config)
        data, model = config.data, config.model
        if not 0 < data.test_fraction < 1:
            raise UserError(f"data.test_fraction must be in (0, 1), got {data.test_fraction}")
        if not 0 <= data.split_seed < 2**32:
            raise UserError(f"data.split_seed must be in [0, 2**32), got {data.split_seed}")
        if data.source_tokens not in ("char", "word"):
            raise UserError(f"data.source_tokens must be char or word, got {data.source_tokens}")
        for key in ("min_count", "max_tokens"):
            if getattr(data, key) < 1:
                raise UserError(f"data.{key} must be >= 1, got {getattr(data, key)}")
        if data.max_target_tokens < 2:  # a token and <eos>
            raise UserError(f"data.max_target_tokens must be >= 2, got {data.max_target_tokens}")
        if data.max_vocabulary < 5:  # padding, unknown, <bos>, <eos> and a token
            raise UserError(f"data.max_vocabulary must be >= 5, got {data.max_vocabulary}")
        for key in ("width", "layers", "heads", "feed_forward"):
            if getattr(model, key) < 1:
                raise UserError(f"model.{key} must be >= 1, got {getattr(model, key)}")
        if model.width % model.heads:
            raise UserError(f"model.heads={model.heads} must divide model.width={model.width}")
        if not 0 <= model.dropout < 1:
            raise UserError(f"model.dropout must be in [0, 1), got {model.dropout}")
        if not 0 <= config.label_smoothing < 1:
            raise UserError(f"label_smoothing must be in [0, 1), got {config.label_smoothing}")
        if not 1 <= config.beam <= 64:
            raise UserError(f"beam must be in [1, 64] (1: greedy), got {config.beam}")

    @classmethod
    def metric_goals(cls, config: TranslationConfig) -> dict[str, Goal]:
        return {"bleu": "max", "exact": "max", "accuracy": "max", "loss": "min"}

    # --- data and models --------------------------------------------------------------------------------------
    def setup(self, runtime: Runtime) -> None:
        data = self.config.data
        self.runtime = runtime
        splits = load_parallel(data.source, data.path, data.test_fraction, data.split_seed, data.reverse)
        train = splits.train
        if data.limit is not None and data.limit < len(train):  # a random subset, the same for every seed
            kept = np.sort(np.random.default_rng(data.split_seed).permutation(len(train))[: data.limit])
            train = [train[i] for i in kept]
        started = time.perf_counter()
        train_sources, train_targets = self._cut(train)
        test_sources, self.test_references = self._cut(splits.test)  # words (or characters), what BLEU counts
        source_vocabulary = build_vocabulary(train_sources, data.min_count, data.max_vocabulary)
        if data.target_tokens == "subword":
            pieces = learn_pieces(train_targets, data.max_vocabulary - 4, data.min_count, (PAD, UNKNOWN, BEGIN, END))
            target_vocabulary = [PAD, UNKNOWN, BEGIN, END, *pieces]
        else:
            target_vocabulary = target_vocabulary_of(train_targets, data.min_count, data.max_vocabulary)
        self._subwords = Subwords(target_vocabulary, UNKNOWN) if data.target_tokens == "subword" else None
        train_targets, test_targets = self._units(train_targets), self._units(self.test_references)
        self.meta = {"source_vocabulary": source_vocabulary, "target_vocabulary": target_vocabulary,
                     "source_tokens": data.source_tokens, "target_tokens": data.target_tokens,
                     "max_tokens": data.max_tokens, "max_target_tokens": data.max_target_tokens,
                     "source": data.source, "reverse": data.reverse,
                     "jieba": jieba_version() if "word" in (data.source_tokens, data.target_tokens) else None,
                     # Drawn from the pairs, which may change (a file of one's own, a newer dictionary): `dlzoo eval`
                     # refuses a test split drawn again that differs, as it may hold pairs the run trained on.
                     "test_split": {"texts": len(splits.test), "fingerprint": split_fingerprint(splits.test)}}
        longer = sum(len(tokens) + 1 > data.max_target_tokens for tokens in train_targets)
        self.notes = [f"data: {data.source}: {len(train):,} training and {len(splits.test):,} test pairs; "
                      f"{len(source_vocabulary):,} source and {len(target_vocabulary):,} target tokens in the "
                      f"vocabularies (seen >= {data.min_count} times; cut in {time.perf_counter() - started:.1f} s)",
                      *splits.notes]
        if longer:
            self.notes.append(f"{longer:,} training targets ({longer / len(train):.1%}) are longer than "
                              f"data.max_target_tokens={data.max_target_tokens} with <eos>: learned up to there")
        device = runtime.device
        self.train_source = encode(train_sources, source_vocabulary, data.max_tokens).to(device)
        self.train_target = target_ids(train_targets, target_vocabulary, data.max_target_tokens).to(device)
        self.test_source = encode(test_sources, source_vocabulary, data.max_tokens).to(device)
        self.test_target = target_ids(test_targets, target_vocabulary, data.max_target_tokens).to(device)
        self.models = self.build_models()
        for model in self.models.values():
            model.to(device)

    def _cut(self, pairs: Sequence[tuple[str, str]]) -> tuple[list[list[str]], list[list[str]]]:
        """Sources as tokens, targets as words (or characters): subword targets are cut into pieces by `_units`."""
        data = self.config.data
        words = "word" if data.target_tokens == "subword" else data.target_tokens
        return (tokenize_all([source for source, _ in pairs], data.source_tokens),
                tokenize_all([target for _, target in pairs], words))

    def _units(self, targets: list[list[str]]) -> list[list[str]]:
        """Targets as the tokens the model writes: their pieces for subword targets, else as they are."""
        return self._subwords.cut(targets) if self._subwords is not None else targets

    def build_models(self) -> dict[str, nn.Module]:
        positions = max(self.meta["max_tokens"], self.meta["max_target_tokens"] + 1)
        return {"net": Seq2SeqTransformer(len(self.meta["source_vocabulary"]), len(self.meta["target_vocabulary"]),
                                          self.config.model, positions)}

    # --- training and evaluation ------------------------------------------------------------------------------
    def train_loader(self) -> LengthBatches:
        runtime, batch_size = self._runtime_set("train_loader"), self.config.data.batch_size
        return LengthBatches(self.train_source, self.train_target, batch_size=batch_size,
                             drop_last=drop_short_last(len(self.train_source), batch_size, runtime.world_size),
                             seed=runtime.seed, rank=runtime.rank, world_size=runtime.world_size, cut_others=False)

    def train_step(self, batch: Any, ctx: StepContext) -> dict[str, torch.Tensor]:
        source, target = batch
        loss, accuracy, _ = self._next_tokens(ctx.models["net"], source, trim(target), self.config.label_smoothing)
        return {"loss": loss, "accuracy": accuracy}

    def _next_tokens(self, net: nn.Module, source: torch.Tensor, target: torch.Tensor,
                     label_smoothing: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean cross-entropy (smoothed in training, plain when evaluated) and accuracy of every next target token
        (padding left out), and how many there are."""
        logits = net(source, target[:, :-1]).float()
        following = target[:, 1:]
        real = following != 0
        loss = F.cross_entropy(logits[real], following[real], label_smoothing=label_smoothing)
        accuracy = (logits[real].argmax(-1) == following[real]).float().mean()
        return loss, accuracy, real.sum()

    def evaluate(self, split: str) -> dict[str, float]:
        net, runtime = self.models["net"], self._runtime_set("evaluate")
        order = torch.argsort((self.test_source != 0).sum(1), stable=True)  # batches of one length: less padding
        references = [self.test_references[i] for i in order.tolist()]
        totals = torch.zeros(3, dtype=torch.float64, device=runtime.device)  # loss sum, right tokens, tokens
        scores = TranslationScores(runtime)
        positions = torch.arange(len(order), device=runtime.device)  # which references a batch's pairs are
        batches = self.held_out_batches(self.test_source[order], self.test_target[order], positions)
        for source, target, index in batches:
            source, target = trim(source), trim(target)
            loss, accuracy, count = self._next_tokens(net, source, target)
            totals += torch.stack([loss.double() * count, accuracy.double() * count, count.double()])
            written = self._write(net, source)
            scores.update(self.tokens_of(written), [references[i] for i in index.tolist()])
        loss, right, count = runtime.all_reduce_sum(totals).tolist()
        return {"loss": loss / count, "accuracy": right / count, **scores.compute()}

    def _write(self, net: nn.Module, source: torch.Tensor) -> torch.Tensor:
        """Target ids for a batch of sources: greedily, or by the configured beam search."""
        if self.config.beam == 1:
            return net.greedy(source, self.meta["max_target_tokens"])
        return net.beam_search(source, self.meta["max_target_tokens"], self.config.beam)

    # --- prediction -------------------------------------------------------------------------------------------
    def tokens_of(self, written: torch.Tensor) -> list[list[str]]:
        """Each row of written ids as target words (or characters), up to its <eos>: pieces joined into words."""
        vocabulary, rows = self.meta["target_vocabulary"], []
        for row in written.tolist():
            row = row[: row.index(END_ID)] if END_ID in row else row
            tokens = [vocabulary[i] for i in row if i != 0]
            rows.append(words_of(tokens) if self.meta["target_tokens"] == "subword" else tokens)
        return rows

    def joined(self, tokens: list[str]) -> str:
        """Target words or characters as text: characters together; words apart by spaces, except around apostrophes
        and hyphens and before the punctuation that the tokenizer cut apart (`one ' s` reads `one's`)."""
        if self.meta["target_tokens"] == "char":
            return "".join(tokens)
        return _CLOSE_UP.sub("", " ".join(tokens))

    def translate(self, texts: list[str]) -> list[dict[str, str]]:
        """A record per text, in their order: the text and its translation (greedy, or by the configured beam)."""
        if isinstance(texts, str):
            raise TypeError(f"translate takes a list of texts: translate([{texts!r}]), not one alone")
        if not texts:
            return []
        ids = encode(tokenize_all(texts, self.meta["source_tokens"]), self.meta["source_vocabulary"],
                     self.meta["max_tokens"])
        written = []
        with torch.no_grad():
            for batch in ids.split(self.config.data.eval_batch_size):
                written += self.tokens_of(self._write(self.models["net"], trim(batch).to(self.runtime.device)))
        return [{"text": text, "translation": self.joined(tokens)} for text, tokens in zip(texts, written,
                                                                                           strict=True)]

    def predict(self, inputs: list[str], out: str | None = None) -> list[dict[str, Any]]:
        """Text files (UTF-8, a text to translate a line; "-" reads standard input): a record per non-blank line,
        naming its file and line number. For texts in memory, `translate`."""
        return records_per_line(inputs, self.translate)

    def describe(self, record: dict[str, Any]) -> str:
        return f"{record['path']}:{record['line']}: {record['text']} -> {record['translation']}"

    # --- export -----------------------------------------------------------------------------------------------
    def export_program(self) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
        return GreedyTranslator(self.models["net"], self.meta["max_target_tokens"]), (
            torch.ones(2, 8, dtype=torch.long),)

    def export_dynamic_shapes(self, example: tuple[torch.Tensor, ...]) -> tuple[dict[int, Any], ...]:
        (shapes,) = super().export_dynamic_shapes(example)
        return ({**shapes, 1: torch.export.Dim("tokens", min=1, max=self.meta["max_tokens"])},)

    def export_contract(self) -> dict[str, Any]:
        cut = {"word": f"cut into words by jieba {self.meta.get('jieba') or ''} (jieba.lcut, whitespace tokens "
                       f"dropped)", "char": "cut into characters (whitespace dropped)"}
        return {"preparation": f"source token ids (batch, tokens) int64: each text NFKC-normalised and lower-cased, "
                               f"{cut[self.meta['source_tokens']]}, each token replaced by its index in "
                               f"meta.source_vocabulary (1 for a token not in it), the first {self.meta['max_tokens']} "
                               f"kept, shorter texts padded with 0 at the end",
                "outputs": f"target token ids (batch, {self.meta['max_target_tokens']}) int64, greedily written: "
                           f"indices in meta.target_vocabulary up to its {END} (id {END_ID}), 0 after it; "
                           f"{_WRITTEN[self.meta['target_tokens']]}"}


# How a run's written tokens make its translation, for its export's sidecar.
_JOINED = "joined by spaces (none around apostrophes or hyphens, or before punctuation)"
_WRITTEN = {"char": "the characters, joined without spaces, make the translation",
            "word": f"the words, {_JOINED}, make the translation",
            "subword": f"the pieces make words (a piece that starts with {CONTINUES} is joined to the one before it), "
                       f"which, {_JOINED}, make the translation"}

# Spaces that `joined` drops: around an apostrophe or a hyphen, before closing punctuation, after an opening bracket.
_CLOSE_UP = re.compile(r" (?=['’,.!?;:)\]-])|(?<=['’(\[-]) ")


def target_vocabulary_of(token_lists: Sequence[Sequence[str]], min_count: int, max_size: int) -> list[str]:
    """`build_vocabulary` with <bos> and <eos> after padding and unknown (ids 2 and 3, as the model expects)."""
    words = [token for token in build_vocabulary(token_lists, min_count, max_size - 2)[2:]
             if token not in (BEGIN, END)]
    return [PAD, UNKNOWN, BEGIN, END, *words]


def target_ids(token_lists: Sequence[Sequence[str]], vocabulary: Sequence[str], max_tokens: int) -> torch.Tensor:
    """(texts, longest + 1) ids `<bos> tokens <eos>` padded with 0; at most `max_tokens` after <bos>, the last one
    <eos>."""
    # Without the four specials: a text that says "<eos>" is a text, as `encode` reads "<pad>".
    index = {token: i for i, token in enumerate(vocabulary) if i > END_ID}
    return padded([[BEGIN_ID, *(index.get(token, UNKNOWN_ID) for token in tokens[: max_tokens - 1]), END_ID]
                   for tokens in token_lists], empty_width=2)
