"""Matplotlib figures (Agg backend, so they render without a display)."""

import os
from pathlib import Path

from recsys_assets.core.atomic import atomic_path


def _pyplot():
    """matplotlib's pyplot on the Agg backend, imported on first use (it costs a step process 0.2 s)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | os.PathLike) -> Path:
    """Save ``fig`` as a PNG at ``path`` atomically and close it."""
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    _pyplot().close(fig)
    return path


def plot_training_history(history: list[dict], path: str | os.PathLike, *, best_epoch: int | None = None) -> Path:
    """Training and validation loss per epoch, saved as a PNG at ``path`` (atomically)."""
    if not history:
        raise ValueError("no training history to plot")
    epochs = [h["epoch"] for h in history]
    fig, ax = _pyplot().subplots(figsize=(7, 4.5), dpi=100)
    ax.plot(epochs, [h["train_loss"] for h in history], marker="o", label="Training Loss")
    ax.plot(epochs, [h["val_loss"] for h in history], marker="o", label="Validation Loss")
    if best_epoch is not None:
        ax.axvline(best_epoch, color="grey", linestyle="--", linewidth=1, label=f"Best epoch ({best_epoch})")
    ax.set_xlabel("Epoch")
    ax.set_ylabel("Loss")
    ax.set_title("Training History")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def plot_rating_histogram(ratings, path: str | os.PathLike) -> Path:
    """Bar chart of how often each rating value occurs, saved as a PNG (atomically)."""
    import numpy as np

    values, counts = np.unique(np.asarray(ratings, dtype=np.float64), return_counts=True)
    fig, ax = _pyplot().subplots(figsize=(7, 3.5), dpi=100)
    ax.bar(values, counts, width=0.4, color="#4C72B0")
    ax.set_xlabel("Rating")
    ax.set_ylabel("Ratings")
    ax.set_title("Rating distribution")
    ax.set_xticks(values)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def plot_ranker_comparison(table, path: str | os.PathLike, *, k: int = 10) -> Path:
    """Grouped bars: each ranker's NDCG, precision, recall, hit rate and coverage at ``k`` (PNG, atomically).

    ``table`` has one row per ranker, a ``ranker`` column and the metric columns.
    """
    import numpy as np

    metrics = [
        (f"ndcg_at_{k}", "NDCG"),
        (f"precision_at_{k}", "precision"),
        (f"recall_at_{k}", "recall"),
        (f"hit_rate_at_{k}", "hit rate"),
        ("coverage", "coverage"),
    ]
    rankers = list(table["ranker"])
    x = np.arange(len(metrics))
    width = 0.8 / max(len(rankers), 1)
    fig, ax = _pyplot().subplots(figsize=(8, 4.5), dpi=100)
    for i, name in enumerate(rankers):
        row = table.iloc[i]
        values = [float(row[m]) for m, _ in metrics]
        bars = ax.bar(x + (i - (len(rankers) - 1) / 2) * width, values, width, label=name)
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
    ax.set_xticks(x, [f"{label}@{k}" if label != "coverage" else label for _, label in metrics])
    ax.set_ylabel("on the validation split")
    ax.set_title("Rankers side by side (same split, same users)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_exposure_curve(
    curve: list[dict],
    path: str | os.PathLike,
    *,
    k: int = 10,
    chosen: float | None = None,
    others: dict | None = None,
    scored_on: str = "the validation split",
) -> Path:
    """NDCG@k against coverage, one point per exposure share (``exposure.exposure_curve``'s rows), the published
    share ringed, and ``others`` ({name: (coverage, ndcg)}) as reference points (PNG, atomically)."""
    fig, ax = _pyplot().subplots(figsize=(7, 4.5), dpi=100)
    x = [row["coverage"] for row in curve]
    y = [row[f"ndcg_at_{k}"] for row in curve]
    ax.plot(x, y, marker="o", label="ranking model's lists, by exposure limit")
    labels: dict[tuple[float, float], list[str]] = {}  # points that coincide share one label
    for row, xi, yi in zip(curve, x, y, strict=True):
        share = row["max_exposure"]
        labels.setdefault((round(xi, 4), round(yi, 4)), []).append("no limit" if share >= 1 else f"{share:.0%}")
        if chosen is not None and abs(share - chosen) < 1e-9:
            ax.scatter([xi], [yi], s=160, facecolors="none", edgecolors="black", label="published setting")
    for (xi, yi), names in labels.items():
        ax.annotate(", ".join(names), (xi, yi), textcoords="offset points", xytext=(5, -10), fontsize=8)
    for name, (cov, ndcg) in (others or {}).items():
        ax.scatter([cov], [ndcg], marker="s", label=name)
    ax.set_xlabel("coverage (share of the catalogue recommended)")
    ax.set_ylabel(f"NDCG@{k} on {scored_on}")
    ax.set_title("What the exposure limit costs and gains")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)
