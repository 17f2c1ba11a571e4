"""Carrying id-embedding rows over to a new vocabulary (warm starts of both models)."""

import numpy as np


def remap_rows(old: np.ndarray, old_vocab, new: np.ndarray, new_vocab, num_oov: int) -> int:
    """Copies rows of `old` [V0, D] into `new` [V1, D] in place, by id; returns rows copied.

    Vocabulary rows map through their token; the trailing `num_oov` OOV rows map by
    position. New tokens keep their fresh initialisation.
    """
    index = {token: row for row, token in enumerate(old_vocab)}
    copied = 0
    for row, token in enumerate(new_vocab):
        if token in index and index[token] < len(old) and row < len(new):
            new[row] = old[index[token]]
            copied += 1
    for k in range(1, num_oov + 1):
        if len(old) - k >= len(old_vocab) and len(new) - k >= len(new_vocab):
            new[len(new) - k] = old[len(old) - k]
            copied += 1
    return copied
