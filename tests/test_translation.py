"""Translation: the encoder-decoder Transformer, its target ids, and `translation` runs on a small parallel file:
learning, evaluation, prediction, export and the settings it refuses."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import urllib.request

import pytest
import torch

from conftest import ROOT, assert_user_error, serving
from dlzoo.tasks.translation import target_ids, target_vocabulary_of
from dlzoo.text.seq2seq import BEGIN_ID, END_ID, Seq2SeqModelConfig, Seq2SeqTransformer
from dlzoo.text.subwords import Subwords, learn_pieces, words_of

pytest.importorskip("jieba")

# Each character stands for one English word: a translation with the words in the characters' order, learnable by
# a tiny model in seconds.
WORDS = {"天": "sky", "地": "earth", "人": "man", "山": "hill", "水": "water", "火": "fire", "木": "wood", "金": "gold",
         "土": "soil", "日": "sun", "月": "moon", "星": "star"}


def parallel_file(path, count: int = 400, seed: int = 0):
    rng = random.Random(seed)
    sources: dict[str, None] = {}  # distinct, in the order drawn
    while len(sources) < count:
        sources["".join(rng.choices(list(WORDS), k=rng.randint(2, 5)))] = None
    lines = [f"{source}\t{' '.join(WORDS[c] for c in source)}\tattribution, ignored" for source in sources]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def tiny_model(target_vocabulary: int = 20) -> Seq2SeqTransformer:
    torch.manual_seed(0)
    return Seq2SeqTransformer(30, target_vocabulary, Seq2SeqModelConfig(width=32, layers=2, heads=4, feed_forward=64,
                                                                        dropout=0.0), 16).eval()


def test_targets_are_framed_by_begin_and_end_and_cut_to_the_longest_written():
    vocabulary = target_vocabulary_of([["a", "b"], ["a", "c", "c"]], 1, 100)
    assert vocabulary[:4] == ["<pad>", "<unk>", "<bos>", "<eos>"] and set(vocabulary[4:]) == {"a", "b", "c"}
    ids = target_ids([["a", "b"], ["c", "c", "c", "x"]], vocabulary, 3)
    a, b, c = (vocabulary.index(t) for t in "abc")
    assert ids.tolist() == [[BEGIN_ID, a, b, END_ID], [BEGIN_ID, c, c, END_ID]]  # 3 written at most, <eos> one


def test_the_decoder_sees_no_later_token_and_greedy_writes_nothing_after_the_end():
    model = tiny_model()
    source = torch.tensor([[5, 6, 7, 0], [8, 9, 0, 0]])
    target = torch.tensor([[BEGIN_ID, 4, 5, 6], [BEGIN_ID, 7, 8, 9]])
    changed = target.clone()
    changed[:, 3] = 10
    assert torch.allclose(model(source, target)[:, :3], model(source, changed)[:, :3], atol=1e-6)
    assert not torch.allclose(model(source, target)[:, 3], model(source, changed)[:, 3])
    with torch.no_grad():
        model.output_bias[END_ID] = 100.0  # <eos> first, at every step
    written = model.greedy(source, 5, stop_early=False)
    assert written.tolist() == [[END_ID, 0, 0, 0, 0]] * 2
    assert model.greedy(source, 5).tolist() == [[END_ID]] * 2  # stops once every row has ended


def test_a_translation_run_learns_scores_predicts_and_exports(cli, tmp_path):
    from dlzoo import load

    pairs = parallel_file(tmp_path / "pairs.tsv")
    run_dir = tmp_path / "run"
    trained = cli("train", "translation", "data.source=parallel-text", f"data.path={pairs}", "data.min_count=1",
                  "data.test_fraction=0.1", "model.width=64", "model.layers=1", "model.feed_forward=128",
                  "model.dropout=0", "data.batch_size=32", "trainer.epochs=30", "optim.lr=5e-3", "trainer.device=cpu",
                  "trainer.threads=1", "--out", run_dir)
    assert trained.code == 0, trained.err
    assert "360 training and 40 test pairs" in trained.out, trained.out
    summary = json.loads((run_dir / "summary.json").read_text())
    final = summary["metrics"]["test"]
    assert final["bleu"] > 0.7 and final["exact"] > 0.5, final  # 0.91 and 0.80 when written; chance: ~0
    evaluated = cli("eval", run_dir)
    assert evaluated.code == 0 and f"bleu {final['bleu']:.4f}" in evaluated.out
    searched = cli("eval", run_dir, "beam=3")  # written by a beam search instead: scored as such
    assert searched.code == 0 and "test (beam=3) loss" in searched.out, searched.err
    assert_user_error(cli("eval", run_dir, "beam=0"), "beam must be in [1, 64] (1: greedy), got 0")
    lines = tmp_path / "in.txt"
    lines.write_text("天地\n\n水火山\n", encoding="utf-8")
    records = [json.loads(line) for line in cli("predict", run_dir, lines, "--json").out.splitlines()]
    assert [(r["line"], r["text"]) for r in records] == [(1, "天地"), (3, "水火山")]
    assert set(records[1]["translation"].split()) <= set(WORDS.values())
    out = tmp_path / "translation.pt2"
    assert cli("export", run_dir, "--out", out).code == 0
    task = load(run_dir, device="cpu")
    assert task.translate(["水火山"])[0]["translation"] == records[1]["translation"]
    source = torch.tensor([[task.meta["source_vocabulary"].index(c) for c in "山水天"], [5, 0, 0]])
    written = torch.export.load(str(out)).module()(source)
    assert written.shape == (2, task.meta["max_target_tokens"])
    assert torch.equal(written[:, :4], task.models["net"].greedy(source, task.meta["max_target_tokens"],
                                                                 stop_early=False)[:, :4])
    assert "greedily written" in json.loads((tmp_path / "translation.pt2.json").read_text())["outputs"]


def test_rare_words_are_cut_into_learned_pieces_and_joined_back():
    words = [["to", "colonise"], ["the", "colonoscope"], ["a", "telescope"], ["to", "colonise", "the", "coast"]] * 3
    pieces = learn_pieces(words, 30, 2, ("<pad>", "<unk>"))
    assert pieces == sorted(pieces) and "<pad>" not in pieces
    assert all(char in pieces or "##" + char in pieces for char in "colonisetheap")  # every character, at least
    cutter = Subwords(["<pad>", "<unk>", *pieces], "<unk>")
    cut = cutter.cut([["colonoscope", "telescopes"], ["x-ray"]])
    assert len(cut[0]) > 2 and all(piece in pieces for piece in cut[0])  # spelled from pieces, none unknown
    assert words_of(cut[0]) == ["colonoscope", "telescopes"]
    assert cut[1] == ["<unk>"]  # a character never seen: the word is unknown
    assert words_of(["##ing", "play", "##ed", "on"]) == ["ing", "played", "on"]


def test_the_same_words_give_the_same_pieces_in_every_process():
    """The trainer numbers its pieces in an order that changes from process to process; the pieces do not."""
    script = ("from dlzoo.text.subwords import learn_pieces; from test_translation import WORDS\n"
              "words = [[w, w + 's', v + w] for w in WORDS.values() for v in WORDS.values()]\n"
              "print(learn_pieces(words, 60, 2, ('<pad>',)))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT / "src")])}
    runs = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True).stdout
            for _ in range(3)]
    assert runs[0] == runs[1] == runs[2] and len(eval(runs[0])) > 20


def test_a_subword_run_writes_words_it_holds_only_as_pieces(cli, tmp_path):
    pairs = parallel_file(tmp_path / "pairs.tsv")
    run_dir = tmp_path / "run"
    trained = cli("train", "translation", "data.source=parallel-text", f"data.path={pairs}", "data.min_count=1",
                  "data.target_tokens=subword", "data.max_vocabulary=40", "data.test_fraction=0.1", "model.width=64",
                  "model.layers=1", "model.feed_forward=128", "model.dropout=0", "data.batch_size=32",
                  "trainer.epochs=30", "optim.lr=5e-3", "trainer.device=cpu", "trainer.threads=1", "--out", run_dir)
    assert trained.code == 0, trained.err
    from dlzoo import load

    task = load(run_dir, device="cpu")
    vocabulary = task.meta["target_vocabulary"]
    whole = [word for word in WORDS.values() if word in vocabulary]
    assert len(vocabulary) <= 40 and len(whole) < 6  # most words only as pieces: "w ##ater"
    final = json.loads((run_dir / "summary.json").read_text())["metrics"]["test"]
    assert final["bleu"] > 0.5 and final["exact"] > 0.3, final  # scored on words, the pieces joined
    assert set(task.translate(["水火山"])[0]["translation"].split()) <= set(WORDS.values())


def test_settings_a_translation_cannot_work_with_are_refused_in_one_line(cli):
    assert_user_error(cli("train", "translation", "model.heads=3"), "model.heads=3 must divide model.width=256")
    assert_user_error(cli("train", "translation", "data.max_target_tokens=1"), "data.max_target_tokens must be >= 2")
    assert_user_error(cli("train", "translation", "data.target_tokens=wordpiece"),
                      "data.target_tokens must be one of char, word, subword")
    assert_user_error(cli("train", "translation", "data.source_tokens=wordpiece"),
                      "data.source_tokens must be char or word")
    assert_user_error(cli("train", "translation", "data.test_fraction=1"), "data.test_fraction must be in (0, 1)")


def test_a_run_is_not_scored_on_pairs_drawn_again_from_a_changed_file(cli, tmp_path):
    """The test pairs are drawn from the file: another order draws others (which may have been trained on), and
    the training pairs left give each token another number."""
    pairs = parallel_file(tmp_path / "pairs.tsv", count=60)
    run_dir = tmp_path / "run"
    common = ["data.source=parallel-text", f"data.path={pairs}", "data.min_count=1", "model.width=16", "model.layers=1",
              "model.feed_forward=16", "trainer.epochs=1", "trainer.device=cpu", "trainer.threads=1"]
    assert cli("train", "translation", *common, "--out", run_dir).code == 0
    assert cli("eval", run_dir).code == 0
    lines = pairs.read_text(encoding="utf-8").splitlines()
    pairs.write_text("\n".join(lines[::-1]), encoding="utf-8")
    assert_user_error(cli("eval", run_dir), "the texts now give another source vocabulary (14 tokens, 14 in training)")
    pairs.write_text("\n".join(lines), encoding="utf-8")
    assert cli("eval", run_dir).code == 0


def test_translation_runs_compare_by_bleu_and_serve_translations(cli, tmp_path):
    pairs = parallel_file(tmp_path / "pairs.tsv", count=40)
    run_dir = tmp_path / "runs" / "translation"
    assert cli("train", "translation", "data.source=parallel-text", f"data.path={pairs}", "data.min_count=1",
               "data.target_tokens=word", "model.width=16", "model.layers=1", "model.feed_forward=16",
               "trainer.epochs=1", "trainer.device=cpu", "trainer.threads=1", "--out", run_dir).code == 0
    out = tmp_path / "table.md"
    compared = cli("compare", run_dir, "--out", out)
    assert compared.code == 0, compared.err
    assert "| translation |" in out.read_text() and "bleu " in out.read_text()
    assert "no plot: none of these runs is scored by accuracy" in compared.err and not out.with_suffix(".png").exists()
    assert_user_error(cli("compare", run_dir, "--plot", tmp_path / "plot.png"), "nothing to plot")
    with serving(run_dir) as (base, _):  # an upload is a text file: a translation per line
        upload = urllib.request.Request(f"{base}/predict?name=words.txt", data="天地\n山水火\n".encode())
        with urllib.request.urlopen(upload) as response:
            records = json.loads(response.read())
    assert [(r["path"], r["line"], r["text"]) for r in records] == [("words.txt", 1, "天地"),
                                                                       ("words.txt", 2, "山水火")]
    assert all(isinstance(r["translation"], str) for r in records)


def test_a_beam_of_one_is_greedy_and_a_wide_beam_finds_the_best_translation_there_is():
    """With 3 words and <eos>, a beam of 16 keeps every 2-token prefix: what it returns must be the best of all
    translations of at most 3 tokens by log-probability / length**0.75, found here by trying them all."""
    import itertools

    model = tiny_model(target_vocabulary=6)  # <pad> <unk> <bos> <eos> and two words: ids 1, 4, 5 are writable
    source = torch.tensor([[5, 6, 7, 0], [8, 9, 0, 0], [3, 4, 5, 6]])
    with torch.no_grad():
        assert torch.equal(model.beam_search(source, 4, 1, alpha=0.0), model.greedy(source, 4))
        found = model.beam_search(source, 3, 16)

        def score(row: int, tokens: tuple[int, ...]) -> float:
            target = torch.tensor([[BEGIN_ID, *tokens[:-1]]])
            steps = model(source[row: row + 1], target)[0].float().log_softmax(-1)
            return sum(steps[i, token].item() for i, token in enumerate(tokens)) / len(tokens) ** 0.75

        for row in range(len(source)):
            candidates = [(*prefix, END_ID) for length in range(3) for prefix in itertools.product((1, 4, 5),
                                                                                                  repeat=length)]
            candidates += list(itertools.product((1, 4, 5), repeat=3))  # no <eos> within the 3 steps
            best = max(candidates, key=lambda tokens: score(row, tokens))
            written = tuple(token for token in found[row].tolist() if token != 0)
            assert written == best, (row, written, best)
