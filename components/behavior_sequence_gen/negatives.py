"""Ranker negatives: catalog items drawn with probability ~ count**power, with exclusions.

`sequences.event_examples` decides what a negative may not be (the items the user
touched at or before the event's time, by default); this module only draws.
"""

from __future__ import annotations

from collections.abc import Mapping, Set

import numpy as np


class NegativeSampler:
    """Draws catalog items with probability proportional to count**power."""

    def __init__(self, counts: Mapping[str, int], power: float):
        items = sorted(item for item, count in counts.items() if count > 0)
        if not items:
            raise ValueError("no item has a training interaction: cannot sample negatives")
        weights = np.array([counts[i] for i in items], dtype=np.float64) ** power
        self.items = items
        self.probs = weights / weights.sum()
        self._cdf = np.cumsum(self.probs)
        self._item_set = frozenset(items)

    def sample(self, rng: np.random.Generator, n: int, exclude: Set[str]) -> list[str]:
        """Returns up to n distinct items, none in `exclude`, drawn without bias.

        Rejection sampling: excluded items are redrawn, so the kept draws follow
        the distribution restricted to the allowed items. Fewer than n come back
        only when too few items are allowed.
        """
        chosen: list[str] = []
        allowed = len(self.items) - len(self._item_set & exclude)
        n = min(n, allowed)
        for _ in range(64):
            if len(chosen) >= n:
                break
            idx = np.searchsorted(self._cdf, rng.random(4 * (n - len(chosen)) + 8), side="right")
            for j in np.minimum(idx, len(self.items) - 1):
                item = self.items[j]
                if item not in exclude and item not in chosen:
                    chosen.append(item)
                    if len(chosen) == n:
                        break
        return chosen
