"""Assign rows to train/validation/test: seeded, chunk by chunk, with exact running shares."""

from __future__ import annotations

import math

import numpy as np

SPLITS = ("train", "validation", "test")


def split_counts(n: int, validation_fraction: float, test_fraction: float) -> tuple[int, int]:
    """(validation rows, test rows) among the first ``n``: ``ceil(n * fraction)`` each."""
    n_test = math.ceil(n * test_fraction)
    n_val = math.ceil(n * validation_fraction)
    return n_val, n_test


class Splitter:
    """Draws each chunk's split membership so the running totals are exactly ``split_counts(rows so far)``.

    The draw is seeded, so the same file, seed and chunk sizes always give the same split.
    """

    def __init__(self, validation_fraction: float, test_fraction: float, seed: int):
        self.validation_fraction, self.test_fraction = validation_fraction, test_fraction
        self.rng = np.random.default_rng(seed)
        self.total = self.n_val = self.n_test = 0

    def assign(self, n: int) -> dict[str, np.ndarray]:
        """Row indexes of the next ``n`` rows, per split; rows keep their order inside each split.

        (Order inside a split does not matter to Linear Learner, which shuffles every epoch, and
        gathering rows in file order is several times faster than in shuffled order.)
        """
        self.total += n
        n_val_all, n_test_all = split_counts(self.total, self.validation_fraction, self.test_fraction)
        n_test, n_val = n_test_all - self.n_test, n_val_all - self.n_val
        self.n_test, self.n_val = n_test_all, n_val_all
        split = np.full(n, 2, dtype=np.int8)
        perm = self.rng.permutation(n)
        split[perm[:n_test]] = 0
        split[perm[n_test:n_test + n_val]] = 1
        return {name: np.flatnonzero(split == k) for k, name in enumerate(("test", "validation", "train"))}
