"""The data set's rules beyond single cells: target and columns, labels for the predictor type, totals.

Each rule raises DataValidationError with a message that names what is wrong, before anything
is spent on SageMaker.
"""

from __future__ import annotations

import numpy as np

from sagemaker_retrain.data_prep.csv_rows import Rows, looks_like_column_names
from sagemaker_retrain.data_prep.errors import DataValidationError

MIN_ROWS = 10


def label_first_order(names: list[str], target_column: str) -> list[int]:
    """Column indexes with the target first; the target must be there, with at least one feature."""
    if target_column not in names:
        shown = f"columns are {names}" if looks_like_column_names(names) else (
            f"the header has {len(names)} column(s) whose names do not look like CSV column names (not shown)")
        raise DataValidationError(f"Target column {target_column!r} not in the header; {shown}")
    if len(names) < 2:
        raise DataValidationError("The data set needs at least one feature column besides the target")
    target_index = names.index(target_column)
    return [target_index] + [i for i in range(len(names)) if i != target_index]


def check_labels(rows: Rows, predictor_type: str, num_classes: int | None) -> None:
    """Classifier labels must be class numbers 0..k-1; the first bad one is named by its line."""
    if predictor_type == "regressor":
        return
    limit = 2 if predictor_type == "binary_classifier" else (num_classes or 0)
    if predictor_type == "multiclass_classifier" and not num_classes:
        raise DataValidationError("predictor_type multiclass_classifier needs the num_classes param")
    labels = rows.labels
    bad = (labels != np.floor(labels)) | (labels < 0) | (labels >= limit)
    if bad.any():
        row = int(np.argmax(bad))
        raise DataValidationError(
            f"Line {rows.line_of(row)}: label {labels[row]:g} is not a class in 0..{limit - 1} "
            f"(required for {predictor_type})"
        )


def check_totals(total: int, label_range: tuple[float, float], target_column: str, split_rows: dict[str, int],
                 min_train_parts: int) -> None:
    """Rules on the whole file: enough rows, a target that varies, no empty split, a train row per instance."""
    if total == 0:
        raise DataValidationError("The data set has a header but no data rows")
    if total < MIN_ROWS:
        raise DataValidationError(f"The data set has {total} data row(s); at least {MIN_ROWS} are needed")
    if label_range[0] == label_range[1]:
        raise DataValidationError(f"Target column {target_column!r} is constant ({label_range[0]:g}): nothing to learn")
    empty = [s for s, rows in split_rows.items() if rows == 0]
    if empty:
        raise DataValidationError(f"Split(s) {empty} came out empty: add rows or raise the shares")
    if split_rows["train"] < min_train_parts:
        raise DataValidationError(
            f"The train split has {split_rows['train']} row(s), fewer than the {min_train_parts} "
            "training instances that would share it"
        )
