"""How rows are cut into the part a model learns from and the part it is judged on.

One home for the split rules: training's validation split, the comparison's folds and the
contest's inner folds all cut rows here (stratified by class, every class in both parts).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split


def split_rows(y, task: str, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation row positions: stratified by class for classification, so every
    class keeps its share in both parts (each class has at least 2 rows, checked upstream)."""
    positions = np.arange(len(y))
    if task == "regression":
        return train_test_split(positions, test_size=fraction, random_state=seed)
    # Integer codes: stratifying on a million string labels took 5.4 s, on their codes a fraction.
    y = pd.factorize(np.asarray(y, dtype=object))[0]
    n_classes = len(np.unique(y))
    n_valid = max(int(round(len(y) * fraction)), n_classes)
    n_valid = min(n_valid, len(y) - n_classes)
    train, valid = train_test_split(positions, test_size=n_valid, random_state=seed, stratify=y)
    return _every_class_in_both(y, train, valid)


def sample_rows(y, task: str, n_keep: int, seed: int = 0) -> np.ndarray:
    """Positions of ``n_keep`` rows (in file order), stratified by class for classification: the
    sample a table too large to train on is cut to (``core.sample_limit``)."""
    if n_keep >= len(y):
        return np.arange(len(y))
    return np.sort(split_rows(y, task, n_keep / len(y), seed)[1])


def _every_class_in_both(y: np.ndarray, train: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rounding can leave a rare class (2-3 rows) out of one part: swap one of its rows in, against
    a row of the part's most common class, so both parts see every class."""
    train, valid = train.copy(), valid.copy()
    for a, b in ((valid, train), (train, valid)):  # make sure ``a`` holds every class
        for cls in np.setdiff1d(np.unique(y), np.unique(y[a])):
            give = np.flatnonzero(y[b] == cls)[0]
            values, counts = np.unique(y[a], return_counts=True)
            take = np.flatnonzero(y[a] == values[counts.argmax()])[0]
            a[take], b[give] = b[give], a[take]
    return train, valid
