"""Scoring a trial on several train/validation splits (repeated holdout), for small data.

With a few dozen validation rows, one split's score moves by a row at a time, and picking the best
of 30 or more trials on it picks the trial that fits that split's noise best: on wine (36 validation
rows) a model tuned on one split ends worse on test than the untuned defaults. Scoring each trial on
``[objective] validation_splits = N`` splits averages that noise away:

- split 0 is the study's own train / validation split: the trial trains on it epoch by epoch,
  reports to the pruner and may be pruned, exactly as with one split;
- a trial that survives trains again, with the same parameters and seed, on ``N - 1`` more
  splits of the same training + validation rows, reshuffled (stratified for classification;
  seeds ``seed + 1`` ... ``seed + N - 1``), with the same number of validation rows, each with
  its preprocessing fitted on its own training rows;
- the trial's value is the mean of its ``N`` validation scores (each split's score is stored on
  the trial, ``split_values``), and the final model's ensemble selection scores the trials'
  validation outputs of all ``N`` splits together.

``validation_splits = "auto"`` (the default) is resolved by :meth:`StudyConfig.fitted_to_data`:
``AUTO_SPLITS`` splits when the training and validation rows are fewer than ``AUTO_MAX_ROWS``
(trials there take fractions of a second, so the extra fits cost little), else one. The test
split is never part of any of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import train_test_split

from tuner.data.loading import Splits
from tuner.study.config import StudyConfig


@dataclass(frozen=True, eq=False)
class Resample:
    """One more train / validation split of the study's training + validation rows, preprocessed
    on its own training rows."""

    Xt_train: np.ndarray
    y_train: np.ndarray
    Xt_val: np.ndarray
    y_val: np.ndarray
    #: The data's row labels of the split's training and validation rows.
    train_rows: pd.Index
    val_rows: pd.Index


def uses_raw_rows(config: StudyConfig) -> bool:
    """Whether the trials draw more splits from the study's raw training and validation rows
    (``validation_splits`` resolved, :meth:`StudyConfig.fitted_to_data`)."""
    return config.objective.validation_splits != 1


def resamples(config: StudyConfig, splits: Splits) -> list[Resample]:
    """The splits beyond the study's own (``validation_splits - 1`` of them; none for one)."""
    n_splits = config.objective.validation_splits
    assert isinstance(n_splits, int), "resolve 'auto' first (StudyConfig.fitted_to_data)"
    if n_splits <= 1:
        return []
    X = pd.concat([splits.X_train, splits.X_val])
    y = np.concatenate([splits.y_train, splits.y_val])
    out = []
    for i in range(1, n_splits):
        X_tr, X_va, y_tr, y_va = train_test_split(
            X,
            y,
            test_size=len(splits.y_val),
            random_state=config.seed + i,
            stratify=y if splits.task == "classification" else None,
        )
        # The study's preprocessing settings (missing values, dates), unfitted.
        pre = clone(splits.preprocessor)
        out.append(
            Resample(
                pre.fit_transform(X_tr), y_tr, pre.transform(X_va), y_va, X_tr.index, X_va.index
            )
        )
    return out


def validation_targets(splits: Splits, extra: list[Resample]) -> np.ndarray:
    """The validation targets of every split, in the order trials' outputs are concatenated."""
    return np.concatenate([splits.y_val, *(r.y_val for r in extra)])
