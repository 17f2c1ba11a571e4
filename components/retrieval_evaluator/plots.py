"""Recall@K curve of the evaluated model (and the baseline) as a PNG, matplotlib Agg."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402 (after selecting the backend)


def recall_at_k_png(curves: Mapping[str, Sequence[float]], title: str = "") -> bytes:
    """Plots Recall@K for K = 1..len(curve), one line per model.

    Args:
        curves: model name (e.g. "model", "baseline") -> [Recall@1, Recall@2, ...].
        title: optional plot title.

    Returns:
        The PNG file's bytes (write them with any filesystem API).
    """
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    try:
        for name, curve in curves.items():
            ks = range(1, len(curve) + 1)
            ax.plot(ks, curve, label=f"{name} (R@10 = {curve[min(9, len(curve) - 1)]:.3f})")
        ax.set_xlabel("K")
        ax.set_ylabel("Recall@K")
        ax.set_ylim(0.0, 1.0)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right")
        ax.set_title(title or "Recall@K, exact search over the catalog")
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        return buffer.getvalue()
    finally:
        plt.close(fig)
