"""Which columns of a table are numbers and which are categories, and how any frame becomes those two kinds of input.

The schema is decided once, on the training table, and stored with the model; prediction checks new tables against
it. A column is numeric when every non-empty cell parses as a number; anything else (and every column named in
`data.categorical`) is a category, compared as stripped text. An empty cell is missing: numeric columns impute it
(see `preprocess.py`), categorical columns keep it as a category of its own, because in house data an empty
"pool quality" usually means "no pool", which says something about the price.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from dlzoo.errors import UserError

if TYPE_CHECKING:  # pandas is imported where used: every command loads this module, and `dlzoo list` stays light
    import pandas as pd

MISSING = "(missing)"
FLOAT32_MAX = float(np.finfo(np.float32).max)  # larger magnitudes (and infinities) are not numbers a model can use


@dataclass
class Schema:
    numeric: list[str]
    categorical: list[str]
    # Numeric columns with missing cells in training: the model also sees a 0/1 "was missing" input for them.
    indicators: list[str]

    @property
    def columns(self) -> list[str]:
        return self.numeric + self.categorical

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schema:
        return cls(**data)


def _is_text(series: pd.Series) -> bool:
    import pandas as pd

    return not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)


def as_numbers(series: pd.Series) -> pd.Series:
    """float64 values; cells that are not numbers become NaN (callers tell them apart from empty cells)."""
    if not _is_text(series):
        return series.astype(np.float64)
    import pandas as pd

    return pd.to_numeric(series.astype("string").str.strip(), errors="coerce").astype(np.float64)


def _looks_numeric(series: pd.Series) -> bool:
    import pandas as pd

    if pd.api.types.is_bool_dtype(series):
        return False
    numbers = as_numbers(series)
    return bool(numbers.notna().any()) and bool((numbers.notna() == series.notna()).all())


def infer_schema(frame: pd.DataFrame, categorical: Iterable[str] = ()) -> Schema:
    forced = list(categorical)
    unknown = [column for column in forced if column not in frame.columns]
    if unknown:
        raise UserError(f"data.categorical names columns the table lacks: {', '.join(unknown)}")
    numeric = [c for c in frame.columns if c not in forced and _looks_numeric(frame[c])]
    categories = [c for c in frame.columns if c not in numeric]
    indicators = [c for c in numeric if frame[c].isna().any()]
    return Schema(numeric, categories, indicators)


# What a spreadsheet adds to a number it formats: a currency sign, a percent sign, a thousands separator (a comma,
# an apostrophe or a space between a digit and a group of three). Such cells are not read as numbers (a comma may
# be a decimal mark elsewhere), but they are counted as numbers when deciding whether to say so.
_NUMBER_FORMATTING = re.compile(r"^[$€£¥]|%$|(?<=\d)[,'\u00a0\u202f ](?=\d{3}(?!\d))")


def numeric_looking_categories(frame: pd.DataFrame, schema: Schema, forced: Iterable[str] = ()) -> list[str]:
    """A note for each categorical column whose cells are mostly numbers, formatted ones included (`forced`, named
    in data.categorical, aside): one stray cell ('?') or numbers written as '$3,477' make a column of numbers a
    column of categories, in which nearly every value is rare and says little."""
    notes = []
    for column in [c for c in schema.categorical if c not in set(forced)]:
        cells = frame[column]
        filled = cells.notna()
        strays = filled & as_numbers(cells).isna()
        unformatted = cells.astype("string").str.strip().str.replace(_NUMBER_FORMATTING, "", regex=True)
        numbers = as_numbers(unformatted)
        if numbers.notna().sum() >= 0.9 * filled.sum() and strays.any():
            row = int(np.flatnonzero(strays.to_numpy())[0])
            notes.append(f"column '{column}' is read as categories, though {int(numbers.notna().sum()):,} of its "
                         f"{int(filled.sum()):,} cells are numbers: row {row + 1} holds {cells.iloc[row]!r} "
                         f"({int(strays.sum())} such cells); make them plain numbers (no thousands separators, "
                         f"currency or percent signs) or empty to use it as numbers")
    return notes


def check_columns(frame: pd.DataFrame, schema: Schema, where: str) -> None:
    """Every column the model was trained on must be there (extra columns are ignored)."""
    missing = [column for column in schema.columns if column not in frame.columns]
    if missing:
        shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        raise UserError(f"{where} lacks {len(missing)} of the {len(schema.columns)} columns the model was trained "
                        f"on: {shown}")


def numeric_matrix(frame: pd.DataFrame, schema: Schema, where: str) -> np.ndarray:
    """(rows, numeric columns) float32 with NaN for empty cells; a cell that is not a finite float32 number is an
    error."""
    matrix = np.empty((len(frame), len(schema.numeric)), dtype=np.float32)
    for j, column in enumerate(schema.numeric):
        cells = frame[column]
        numbers = as_numbers(cells)
        # Models compute in float32: a finite float64 beyond its range (1e39) would become infinity there.
        bad = (numbers.isna() & cells.notna()) | (numbers.abs() > FLOAT32_MAX)
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise UserError(f"{where}: column '{column}' holds numbers, but row {row + 1} has "
                            f"{cells.iloc[row]!r} ({int(bad.sum())} such cells; a cell must be empty or a finite "
                            f"number within +-{FLOAT32_MAX:.1e})")
        matrix[:, j] = numbers.to_numpy()
    return matrix


def category_text(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """The categorical columns as stripped text, with MISSING for empty cells; numbers written as in a CSV (20, not
    20.0), so a code read from a typed table and the same code read from a CSV file are one category."""
    import pandas as pd

    columns = {}
    for column in schema.categorical:
        cells = frame[column]
        if _is_text(cells):
            text = cells.astype("string").str.strip()
        else:
            # As "string": a column all empty (read as float NaNs) maps to floats, which take no text below.
            text = cells.map(lambda v: str(int(v)) if float(v).is_integer() else repr(float(v)),
                             na_action="ignore").astype("string")
        present = cells.notna().to_numpy() & (text.fillna("") != "").to_numpy()
        text = text.where(present, MISSING)
        columns[column] = text.astype(str).to_numpy()
    return pd.DataFrame(columns, index=frame.index)
