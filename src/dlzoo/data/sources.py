"""Where data comes from, in the order it is looked for:

1. an explicit path (the config's `data.path`), or `$DLZOO_DATA/<source>`;
2. system package locations (e.g. Debian's dataset-fashion-mnist in /usr/share/datasets/fashion-mnist);
3. the local cache (`$DLZOO_CACHE`, else `$XDG_CACHE_HOME/dlzoo`, else `~/.cache/dlzoo`), `<cache>/<source>`;
4. a download from the official URLs into the cache, verified against known checksums (MD5s, or another digest
   where that is what the publisher gives: `checksum`); a source published as one archive (.tar, .tar.gz, .zip) is
   fetched whole, checked, and unpacked into the cache whole (`download_archive`).

When nothing works the error names the files expected and where to put them. `dlzoo data` prints the same facts for
every registered source.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from dlzoo.errors import UserError, one_line, unknown_name
from dlzoo.files import written_whole


class DataSource(Protocol):
    name: str
    description: str

    def where(self) -> str | None:
        """Where the data is found on this machine now, or None."""

    def how_to_get(self) -> str:
        """One sentence telling a user how to make the data available."""


SOURCES: dict[str, DataSource] = {}


@dataclass(frozen=True)
class UserDataSource:
    """Data of one's own (pictures, texts, masks), found where data.path says: there is no default location."""

    name: str
    description: str
    needs: str  # what data.path must name

    def where(self) -> str | None:
        return None

    def how_to_get(self) -> str:
        return f"set data.path to {self.needs}"


def register_source(source: DataSource) -> DataSource:
    SOURCES[source.name] = source
    return source


def get_source(name: str) -> DataSource:
    if name not in SOURCES:
        raise unknown_name("data source", name, SOURCES)
    return SOURCES[name]


def cache_dir() -> Path:
    if "DLZOO_CACHE" in os.environ:
        return Path(os.environ["DLZOO_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "dlzoo"


@dataclass(frozen=True)
class RemoteFile:
    name: str
    md5: str


@dataclass(frozen=True)
class Archive:
    """One official archive holding a source's files, rather than a file per download."""

    url: str
    # Its MD5 in hex, or an algorithm's name, a colon and its digest ("sha1:94646ad1..."), where the publisher gives
    # another digest (d2l publishes SHA-1s).
    checksum: str
    folder: str = "."  # the folder in the archive that holds the files; a folder given (data.path) may hold it too


@dataclass(frozen=True)
class FileSource:
    """A data set made of named files, found locally or downloaded from mirrors and checked by MD5."""

    name: str
    description: str
    files: tuple[RemoteFile, ...]
    mirrors: tuple[str, ...] = ()
    system_dirs: tuple[str, ...] = ()
    # Also accept the files without their `.gz` suffix (some users unpack them).
    allow_unpacked: bool = True
    license: str = ""
    extra_help: str = field(default="", compare=False)
    # Pictures: a folder of one's own in their place (train/<class>/...) is read by data.source=folder.
    pictures: bool = False
    # Published as one archive (then `mirrors` is empty and the files' MD5s may be too: the archive's is checked).
    archive: Archive | None = None

    def _has_files(self, folder: Path) -> bool:
        return all(self._find(folder, f.name) is not None for f in self.files)

    def _holder(self, folder: Path) -> Path | None:
        """`folder`, or the archive's folder inside it, whichever holds every file."""
        inside = [folder / self.archive.folder] if self.archive is not None else []
        return next((f for f in (folder, *inside) if self._has_files(f)), None)

    def _inside(self, folder: Path) -> Path:
        """The archive's folder in `folder` where there is one (the files missing there are the ones to name)."""
        inside = folder / self.archive.folder if self.archive is not None else folder
        return inside if inside.is_dir() else folder

    def _lacks(self, folder: Path) -> str | None:
        """What an unpacked archive in `folder` lacks, for `download_archive`; None when it holds every file."""
        if self._holder(folder) is not None:
            return None
        inside = f"{self.archive.folder}/ with " if self.archive and self.archive.folder != "." else ""
        return inside + ", ".join(f.name for f in self.files)

    def _spellings(self, name: str) -> list[str]:
        """`name`, and without its `.gz` where unpacked files are accepted."""
        return [name, name[:-3]] if self.allow_unpacked and name.endswith(".gz") else [name]

    def _find(self, folder: Path, name: str) -> Path | None:
        return next((folder / n for n in self._spellings(name) if (folder / n).is_file()), None)

    def file(self, folder: Path, name: str) -> Path:
        found = self._find(folder, name)
        if found is None:
            raise UserError(f"{self.name}: {name} is missing in {folder}")
        return found

    def candidates(self) -> list[tuple[str, Path]]:
        found = []
        if "DLZOO_DATA" in os.environ:
            found.append(("DLZOO_DATA", Path(os.environ["DLZOO_DATA"]) / self.name))
        found += [("system", Path(d)) for d in self.system_dirs]
        found.append(("cache", cache_dir() / self.name))
        return found

    def where(self) -> str | None:
        for _, folder in self.candidates():
            if (holder := self._holder(folder)) is not None:
                return str(holder)
        return None

    def how_to_get(self) -> str:
        names = ", ".join(f.name for f in self.files)
        text = f"put {names} in $DLZOO_DATA/{self.name}/ or {cache_dir() / self.name}/, or pass data.path=FOLDER"
        if self.mirrors or self.archive:
            text += "; when online they are downloaded automatically"
        return text + (f"; {self.extra_help}" if self.extra_help else "")

    def locate(self, explicit: str | None = None, download: bool = True) -> Path:
        """The folder holding every file, downloading into the cache if needed and allowed."""
        if explicit:
            folder = Path(explicit).expanduser()
            if folder.is_file():  # one of the files names the folder that holds them; another file is a mistake
                if not any(folder.name in self._spellings(f.name) for f in self.files):
                    names = [f.name for f in self.files]
                    expected = names[0] if len(names) == 1 else f"one of {', '.join(names)}"
                    raise UserError(f"{self.name}: data.path={folder} is a file, not {expected}; give the folder "
                                    f"that holds {'it' if len(names) == 1 else 'them'}")
                folder = folder.parent
            folder = self._holder(folder) or self._inside(folder)
            if not self._has_files(folder):
                missing = [f.name for f in self.files if self._find(folder, f.name) is None]
                hint = ""
                if self.pictures and (folder / "train").is_dir():  # the layout of data.source=folder
                    hint = "; for a folder of your own pictures (train/<class>/...), add data.source=folder"
                raise UserError(f"{self.name}: {folder} lacks {', '.join(missing)}{hint}")
            return folder
        found = self.where()
        if found:
            return Path(found)
        if download and (self.mirrors or self.archive):
            return self.download()
        raise UserError(f"{self.name} not found: {self.how_to_get()}")

    def download(self, target: Path | None = None) -> Path:
        target = target or cache_dir() / self.name
        if self.archive is not None:
            unpacked = download_archive(self.name, self.archive, target, self._lacks, self.how_to_get())
            return unpacked / self.archive.folder
        # No mkdir here: fetch makes the folder as it writes a file (dlzoo.files), and removes it again if that fails,
        # so a download that got nothing leaves no empty cache folder to be taken for one.
        for remote in self.files:
            if (target / remote.name).is_file() and digest(target / remote.name) == remote.md5:
                continue
            errors = []
            for mirror in self.mirrors:
                try:
                    fetch(mirror + remote.name, target / remote.name, remote.md5)
                    break
                except (OSError, urllib.error.URLError, http.client.HTTPException, ValueError) as error:
                    errors.append(f"{mirror}: {error}")
            else:
                raise UserError(f"{self.name}: could not download {remote.name} ({'; '.join(errors)}); "
                                f"{self.how_to_get()}")
        return target


def digest(path: Path, algorithm: str = "md5", chunk: int = 1 << 20) -> str:
    """`path`'s digest in hex, by any algorithm hashlib knows (md5, sha1, sha256, ...)."""
    hashed = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            hashed.update(block)
    return hashed.hexdigest()


def _algorithm(checksum: str) -> tuple[str, str]:
    """("sha1", HEX) for "sha1:HEX"; ("md5", HEX) for a bare hex digest, as most published here are MD5s."""
    algorithm, _, expected = checksum.rpartition(":")
    return algorithm.lower() or "md5", expected.lower()


def has_checksum(path: Path, checksum: str) -> bool:
    """Whether `path`'s digest is `checksum` (an MD5 in hex, or "sha1:HEX" and the like)."""
    algorithm, expected = _algorithm(checksum)
    return digest(path, algorithm) == expected


def fetch(url: str, destination: Path, checksum: str, timeout: float = 60.0) -> Path:
    """Download under a temporary name, check its digest (`checksum`: an MD5 in hex, or "sha1:HEX" and the like),
    then rename (dlzoo.files): a partial download is never mistaken for data, and one that fails is removed. The
    temporary file is this call's own: the ranks of a torchrun job may all be downloading the same file at once, and
    each renames a complete copy into place."""
    request = urllib.request.Request(url, headers={"User-Agent": "dlzoo"})
    with written_whole(destination) as partial:
        with urllib.request.urlopen(request, timeout=timeout) as response, open(partial, "wb") as handle:
            while block := response.read(1 << 20):
                handle.write(block)
        algorithm, expected = _algorithm(checksum)
        got = digest(partial, algorithm)
        if got != expected:
            raise ValueError(f"checksum mismatch for {url}: expected {algorithm} {expected}, got {got}")
    return destination


def download_archive(source: str, archive: Archive, target: Path, lacks: Callable[[Path], str | None],
                     how_to_get: str) -> Path:
    """`archive` fetched beside `target` (its checksum checked, written whole), unpacked into `target` whole and
    removed: `target`. `lacks(folder)` says what an unpacked folder lacks (as "VOC2012/ with ..."), or None when it
    is whole."""
    path = target.with_name(archive.url.rsplit("/", 1)[1])
    if not (path.is_file() and has_checksum(path, archive.checksum)):  # one kept by a failed unpacking is used
        try:
            fetch(archive.url, path, archive.checksum)
        except (OSError, urllib.error.URLError, http.client.HTTPException, ValueError) as error:
            raise UserError(f"{source}: could not download {archive.url} ({one_line(error)}); {how_to_get}") from None
    unpack_whole(source, path, target, lacks)
    path.unlink(missing_ok=True)  # large; another process of a torchrun job may have removed it already
    return target


def unpack_whole(source: str, archive: Path, target: Path, lacks: Callable[[Path], str | None]) -> None:
    """A .tar(.gz) or .zip unpacked into a hidden folder beside `target` and renamed to `target` once whole: a process
    killed midway leaves that hidden folder, never a `target` that looks complete but lacks files."""
    partial = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        try:
            _extract_all(archive, partial)
        except (tarfile.TarError, zipfile.BadZipFile, OSError) as error:
            raise UserError(f"{source}: cannot unpack {archive}: {one_line(error)}") from None
        if missing := lacks(partial):
            raise UserError(f"{source}: {archive} holds no {missing}")
        try:
            partial.rename(target)
        except OSError as error:
            if lacks(target):  # else another process of a torchrun job put its copy there first
                raise UserError(f"{source}: cannot move the unpacked data to {target}: {error.strerror} (a folder "
                                f"there that is no whole copy? remove it)") from None
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _extract_all(archive: Path, folder: Path) -> None:
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(folder)  # zipfile itself drops absolute names and ".." from members, and makes no links
        return
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(folder, filter="data")  # refuses links out of `folder`, absolute names, devices
            return
        for member in tar.getmembers():  # the same refusals, for Pythons older than the filter (3.10.12, 3.11.4)
            inside = not member.name.startswith("/") and ".." not in Path(member.name).parts
            if not (member.isfile() or member.isdir()) or not inside:
                raise tarfile.TarError(f"refused {member.name}: not a plain file or folder inside the archive")
        tar.extractall(folder)
