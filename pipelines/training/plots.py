"""Figures of an evaluation (ROC and calibration, or residuals; permutation importance).

Split from :mod:`pipelines.training.evaluate` so that module reads as the evaluation itself;
matplotlib is imported on first use (headless ``Agg`` backend).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipelines.config import Settings
from pipelines.training import metrics


def evaluation_figures(
    settings: Settings,
    y: np.ndarray,
    cand: np.ndarray,
    champ: np.ndarray | None,
    champ_label: str,
    importance: dict[str, float],
) -> dict[str, Any]:
    """Figures keyed by artifact path (matplotlib, headless)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs: dict[str, Any] = {}
    task = settings.dataset.target.task
    series = [("candidate", cand)] + ([(champ_label, champ)] if champ is not None else [])
    if task == "classification":
        from sklearn.calibration import calibration_curve
        from sklearn.metrics import roc_curve

        fig, ax = plt.subplots(figsize=(5, 5))
        for label, s in series:
            fpr, tpr, _ = roc_curve(y, s)
            ax.plot(fpr, tpr, label=f"{label} (AUC {metrics.CLASSIFICATION['roc_auc'].fn(y, s):.3f})")
        ax.plot([0, 1], [0, 1], "k:", lw=1)
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC on holdout")
        ax.legend(loc="lower right")
        figs["evaluation/roc.png"] = fig
        fig, ax = plt.subplots(figsize=(5, 5))
        for label, s in series:
            frac, mean_pred = calibration_curve(y, s, n_bins=10, strategy="quantile")
            ax.plot(mean_pred, frac, "o-", label=label)
        ax.plot([0, 1], [0, 1], "k:", lw=1)
        ax.set(xlabel="mean predicted probability", ylabel="observed frequency", title="Calibration")
        ax.legend(loc="upper left")
        figs["evaluation/calibration.png"] = fig
    else:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.scatter(cand, y - cand, s=4, alpha=0.4)
        ax.axhline(0, color="k", lw=1)
        ax.set(xlabel="predicted", ylabel="residual (actual - predicted)", title="Residuals on holdout")
        figs["evaluation/residuals.png"] = fig
    top = list(importance.items())[:20][::-1]
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(top) + 1.2))
    ax.barh([k for k, _ in top], [v for _, v in top])
    ax.set(xlabel="mean loss of the primary metric when shuffled", title="Permutation importance")
    fig.tight_layout()
    figs["evaluation/feature_importance.png"] = fig
    return figs
