"""A BERT from the Hugging Face Hub (bert-base-chinese, or any model of BERT's architecture) as dlzoo's encoder.

`model.pretrained=hf:bert-base-chinese` downloads its config.json, vocab.txt, tokenizer_config.json and weights
(model.safetensors, else pytorch_model.bin) into the Hub's cache with `huggingface_hub`; `model.pretrained=DIR`
reads a folder holding the same files (a `save_pretrained` folder, or a downloaded model). The weights are renamed
into `BertEncoder`'s modules, which compute what transformers' `BertModel` computes (a test compares the two).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import torch

from dlzoo.errors import UserError
from dlzoo.text.bert import BertShape

HUB_PREFIX = "hf:"
CONFIG = "config.json"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # the first a model has is read


def is_hub_model(path: str) -> bool:
    """`hf:NAME`, or a folder with a Hub model's config.json (a dlzoo run has none)."""
    return path.startswith(HUB_PREFIX) or (Path(path).expanduser() / CONFIG).is_file()


def hub_folder(path: str) -> Path:
    """The local folder of `path`: downloaded (or found in the Hub's cache) for `hf:NAME`, else the folder itself."""
    if not path.startswith(HUB_PREFIX):
        return Path(path).expanduser()
    name = path[len(HUB_PREFIX):]
    if not name:
        raise UserError("model.pretrained=hf:NAME names a model on the Hugging Face Hub, e.g. hf:bert-base-chinese")
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError
    except ImportError:
        raise UserError("reading a model from the Hugging Face Hub needs huggingface_hub: pip install "
                        "'dlzoo[text]'") from None
    try:
        folder = Path(hf_hub_download(name, CONFIG)).parent
        for optional in ("vocab.txt", "tokenizer_config.json"):
            with contextlib.suppress(EntryNotFoundError):  # reading the folder says what is missing
                hf_hub_download(name, optional)
        for weights in WEIGHT_FILES:
            try:
                hf_hub_download(name, weights)
                break
            except EntryNotFoundError:
                continue
    except UserError:
        raise
    except Exception as error:  # noqa: BLE001 - network, missing repository, offline cache: all one line
        raise UserError(f"cannot download {name} from the Hugging Face Hub ({type(error).__name__}: "
                        f"{str(error).splitlines()[0] if str(error) else 'no detail'}); give model.pretrained=DIR, a "
                        f"folder with its config.json, vocab.txt and weights") from None
    return folder


def read_config(folder: Path, name: str = CONFIG) -> dict[str, Any]:
    """A JSON object from the folder (config.json, tokenizer_config.json)."""
    from dlzoo.data.texts import read_text

    path = folder / name
    try:
        config = json.loads(read_text(path))
    except json.JSONDecodeError as error:
        raise UserError(f"{path} is not JSON ({error.msg}, line {error.lineno})") from None
    if not isinstance(config, dict):
        raise UserError(f"{path} is not a model's config (a JSON object)")
    return config


def hub_shape(config: dict[str, Any], where: str, dropout: float = 0.1) -> BertShape:
    """The encoder a Hub config describes; what dlzoo's BERT cannot be is refused in one line."""
    model_type = config.get("model_type")
    if model_type != "bert":
        raise UserError(f"{where} is a {model_type or 'model without a model_type'}: dlzoo reads BERT models "
                        f"(model_type bert)")
    unsupported = {"hidden_act": "gelu", "position_embedding_type": "absolute", "type_vocab_size": 2}
    for key, supported in unsupported.items():
        if config.get(key, supported) != supported:
            raise UserError(f"{where}: {key}={config[key]!r}; dlzoo's BERT has {key}={supported!r}")
    try:
        return BertShape(vocabulary_size=int(config["vocab_size"]), hidden=int(config["hidden_size"]),
                         layers=int(config["num_hidden_layers"]), heads=int(config["num_attention_heads"]),
                         feed_forward=int(config["intermediate_size"]),
                         max_tokens=int(config["max_position_embeddings"]), dropout=dropout, post_norm=True,
                         norm_eps=float(config.get("layer_norm_eps", 1e-12)))
    except KeyError as error:
        raise UserError(f"{where} lacks {error.args[0]}, which a BERT config has") from None


def read_weights(folder: Path) -> dict[str, torch.Tensor]:
    """The weights of a Hub folder: model.safetensors, else pytorch_model.bin (loaded with weights_only)."""
    for name in WEIGHT_FILES:
        path = folder / name
        if not path.is_file():
            continue
        try:
            if name.endswith(".safetensors"):
                from safetensors.torch import load_file

                return load_file(path)
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - a corrupt or truncated file, in one line
            raise UserError(f"cannot read {path}: {type(error).__name__}: {str(error).splitlines()[0]}") from None
    raise UserError(f"{folder} holds no weights ({' or '.join(WEIGHT_FILES)})")


def encoder_weights(hub: dict[str, torch.Tensor], shape: BertShape, where: str) -> dict[str, torch.Tensor]:
    """A Hub BERT's weights (a BertModel's, or a BertFor...'s under `bert.`; LayerNorms as weight/bias or as the
    older gamma/beta) as `BertEncoder`'s state dict. The query, key and value projections join into
    `nn.MultiheadAttention`'s one in-projection."""
    prefix = "bert." if any(key.startswith("bert.") for key in hub) else ""
    renamed = {key.replace(".gamma", ".weight").replace(".beta", ".bias"): value.float() if value.is_floating_point()
               else value for key, value in hub.items()}  # half-precision files train in float32 here

    def take(name: str) -> torch.Tensor:
        try:
            return renamed[prefix + name]
        except KeyError:
            raise UserError(f"{where} lacks the weight {prefix + name}: not a BERT checkpoint") from None

    state = {"token.weight": take("embeddings.word_embeddings.weight"),
             "segment.weight": take("embeddings.token_type_embeddings.weight"),
             "position.weight": take("embeddings.position_embeddings.weight"),
             "embedding_norm.weight": take("embeddings.LayerNorm.weight"),
             "embedding_norm.bias": take("embeddings.LayerNorm.bias")}
    for i in range(shape.layers):
        hub_layer, layer = f"encoder.layer.{i}.", f"layers.layers.{i}."
        for kind in ("weight", "bias"):
            state[layer + f"self_attn.in_proj_{kind}"] = torch.cat(
                [take(hub_layer + f"attention.self.{part}.{kind}") for part in ("query", "key", "value")])
            for ours, theirs in (("self_attn.out_proj", "attention.output.dense"),
                                 ("norm1", "attention.output.LayerNorm"), ("linear1", "intermediate.dense"),
                                 ("linear2", "output.dense"), ("norm2", "output.LayerNorm")):
                state[f"{layer}{ours}.{kind}"] = take(f"{hub_layer}{theirs}.{kind}")
    if prefix + "pooler.dense.weight" in renamed:  # sentence-embedding models may have dropped the pooler
        state["pooler.0.weight"], state["pooler.0.bias"] = take("pooler.dense.weight"), take("pooler.dense.bias")
    return state
