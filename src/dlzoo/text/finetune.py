"""What a fine-tuning run starts from: a dlzoo BERT pretraining run (`dlzoo train bert-news`), or a BERT from the
Hugging Face Hub (`hf:bert-base-chinese`, or its folder): its vocabulary, normalization, encoder shape and weights."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dlzoo.errors import UserError
from dlzoo.text.wordpiece import Normalization

# A Hub model made for sentence embeddings may lack BERT's pooler: the classifier then learns it new.
OPTIONAL = ("pooler.0.weight", "pooler.0.bias")


@dataclass
class PretrainedBert:
    origin: dict[str, str]  # where it came from, as the fine-tuning run's meta records it
    vocabulary: list[str]
    shape: dict[str, Any]  # BertShape's fields
    encoder_weights: dict[str, torch.Tensor]
    normalization: Normalization = field(default_factory=Normalization)

    @classmethod
    def read(cls, path: str) -> PretrainedBert:
        """A run (or one of its checkpoints), or a Hub model (`hf:NAME` or its folder), at `path`; anything else
        is refused in one line."""
        from dlzoo.text.hub import is_hub_model

        return cls._read_hub(path) if is_hub_model(path) else cls._read_run(path)

    @classmethod
    def _read_run(cls, path: str) -> PretrainedBert:
        from dlzoo.engine import checkpoint
        from dlzoo.runs import open_run
        from dlzoo.tasks.bert_pretraining import BertPretraining

        run = open_run(Path(path).expanduser())
        if run.recipe.task is not BertPretraining:
            raise UserError(f"model.pretrained={path} is a {run.recipe.name} run, not a BERT pretraining run "
                            f"(dlzoo train bert-news)")
        prefix = "net.encoder."
        weights = checkpoint.read_weights(run.checkpoint / checkpoint.WEIGHTS)
        encoder = {key[len(prefix):]: value for key, value in weights.items() if key.startswith(prefix)}
        meta = run.metadata["meta"]
        origin = {"run": str(run.run_dir), "checkpoint": run.checkpoint.name}
        return cls(origin, list(meta["vocabulary"]), dict(meta["shape"]), encoder, Normalization.of(meta))

    @classmethod
    def _read_hub(cls, path: str) -> PretrainedBert:
        from dlzoo.text.hub import encoder_weights, hub_folder, hub_shape, read_config, read_weights
        from dlzoo.text.wordpiece import read_vocabulary_file

        folder = hub_folder(path)
        shape = hub_shape(read_config(folder), str(folder))
        vocabulary = read_vocabulary_file(folder / "vocab.txt")
        if len(vocabulary) > shape.vocabulary_size:
            raise UserError(f"{folder / 'vocab.txt'} has {len(vocabulary):,} tokens, more than the "
                            f"{shape.vocabulary_size:,} embeddings its config.json gives")
        tokenizer = _tokenizer_config(folder)
        normalization = Normalization(nfkc=False, lowercase=bool(tokenizer.get("do_lower_case", True)),
                                      strip_accents=tokenizer.get("strip_accents"))
        weights = encoder_weights(read_weights(folder), shape, str(folder))
        origin = {"hub": path.removeprefix("hf:"), "folder": str(folder.resolve())}
        return cls(origin, vocabulary, shape.as_dict(), weights, normalization)

    def load_into(self, encoder: nn.Module) -> None:
        """Its weights into a `BertEncoder` of its shape (a weight of another shape is refused in one line)."""
        try:
            missing, unexpected = encoder.load_state_dict(self.encoder_weights, strict=False)
        except RuntimeError as error:  # shapes that differ from the config's
            raise UserError(f"the weights of {self.describe()} do not fit its config: "
                            f"{str(error).splitlines()[1].strip()}") from None
        missing = [key for key in missing if key not in OPTIONAL]
        if missing or unexpected:
            raise UserError(f"the weights of {self.describe()} do not match BERT's: "
                            f"{', '.join([*missing, *unexpected][:3])}")

    def describe(self) -> str:
        return self.origin.get("hub") or self.origin["run"]


def _tokenizer_config(folder: Path) -> dict[str, Any]:
    """The folder's tokenizer_config.json, or nothing (BertTokenizer's defaults: lower-cased)."""
    from dlzoo.text.hub import read_config

    path = folder / "tokenizer_config.json"
    return read_config(folder, path.name) if path.is_file() else {}
