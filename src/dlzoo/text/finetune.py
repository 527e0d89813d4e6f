"""A pretrained BERT run as a fine-tuning run starts from it: its vocabulary, its encoder's shape and weights."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dlzoo.errors import UserError


@dataclass
class PretrainedBert:
    run: Path
    checkpoint: str  # epoch-NNNN
    vocabulary: list[str]
    shape: dict[str, Any]  # BertShape's fields
    encoder_weights: dict[str, torch.Tensor]

    @classmethod
    def read(cls, path: str) -> PretrainedBert:
        """The run (or one of its checkpoints) at `path`; a run of another kind is refused in one line."""
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
        return cls(run.run_dir, run.checkpoint.name, list(meta["vocabulary"]), dict(meta["shape"]), encoder)

    def describe(self) -> dict[str, str]:
        """What meta records of where the encoder came from."""
        return {"run": str(self.run), "checkpoint": self.checkpoint}
