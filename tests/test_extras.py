"""A missing optional package (an extra not installed) is a one-line UserError naming the extra, not an ImportError:
each place that imports one on use is run with that package hidden."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable

import pytest

from dlzoo.errors import UserError


def _subwords() -> None:
    from dlzoo.text.subwords import Subwords

    Subwords(["[UNK]", "a"], "[UNK]")


def _wordpiece() -> None:
    from dlzoo.text.wordpiece import learn_vocabulary

    learn_vocabulary(["a b"], size=10, min_count=1)


def _jieba() -> None:
    from dlzoo.text.tokens import tokenize

    tokenize("今天天气很好", "word")


def _gensim() -> None:
    from dlzoo.text.word2vec import word_vectors

    word_vectors([["a"]], ["<pad>", "a"], dim=4, seed=0)


def _onnx() -> None:
    from dlzoo.export import _check_onnx_installed

    _check_onnx_installed()


@pytest.mark.parametrize(("hidden", "use", "extra"), [
    ("tokenizers", _subwords, "dlzoo[text]"),
    ("tokenizers", _wordpiece, "dlzoo[text]"),
    ("jieba", _jieba, "dlzoo[text]"),
    ("gensim", _gensim, "dlzoo[text]"),
    ("onnx", _onnx, "dlzoo[export]"),
])
def test_a_missing_extra_names_what_to_install(monkeypatch: pytest.MonkeyPatch, hidden: str,
                                               use: Callable[[], None], extra: str) -> None:
    for name in list(sys.modules):
        if name == hidden or name.startswith(hidden + "."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, hidden, None)  # `import hidden` now raises ImportError
    with pytest.raises(UserError, match=re.escape(f"pip install '{extra}'")):
        use()
