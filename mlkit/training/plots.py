"""Evaluation plots written as PNG files: confusion matrix, ROC and precision-recall curves,
residuals, predicted vs actual, feature importance.

Figures are built with matplotlib's object API (no pyplot, no GUI backend, no global state).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def write_plots(
    folder: Path,
    *,
    task: str,
    y_true: Any,
    predicted: Any,
    scores: Any | None,
    classes: Sequence[Any] | None,
    importances: dict[str, float] | None,
) -> list[Path]:
    """Write the plots that fit the task into ``folder``; return the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if task == "classification":
        written.append(_confusion(folder / "confusion_matrix.png", y_true, predicted, classes))
        if scores is not None and scores.shape[1] >= 2:
            written += _curves(folder, y_true, scores, classes)
    else:
        written += _regression(folder, y_true, predicted)
    if importances:
        written.append(_importance(folder / "feature_importance.png", importances))
    return written


def _figure(width: float = 5.0, height: float = 4.0) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=90, layout="tight")


def _confusion(path: Path, y_true: Any, predicted: Any, classes: Sequence[Any] | None) -> Path:
    from sklearn.metrics import confusion_matrix

    labels = list(range(len(classes))) if classes else None
    matrix = confusion_matrix(y_true, predicted, labels=labels)
    names = [str(c) for c in classes] if classes else [str(i) for i in range(matrix.shape[0])]
    fig = _figure()
    ax = fig.add_subplot()
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    for (row, col), value in _cells(matrix):
        ax.text(
            col,
            row,
            str(value),
            ha="center",
            va="center",
            color="white" if value > matrix.max() / 2 else "black",
        )
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title("Confusion matrix (test split)")
    fig.savefig(path)
    return path


def _cells(matrix: Any) -> list[tuple[tuple[int, int], int]]:
    return [((r, c), int(matrix[r, c])) for r in range(matrix.shape[0]) for c in range(matrix.shape[1])]


def _curves(folder: Path, y_true: Any, scores: Any, classes: Sequence[Any] | None) -> list[Path]:
    """ROC and precision-recall curves: of the positive class, or of each class against the rest."""
    from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

    series = list(_one_vs_rest(y_true, scores, classes))
    multiclass = scores.shape[1] > 2
    roc_fig, pr_fig = _figure(), _figure()
    roc_ax, pr_ax = roc_fig.add_subplot(), pr_fig.add_subplot()
    for name, truth, score in series:
        fpr, tpr, _ = roc_curve(truth, score)
        roc_ax.plot(fpr, tpr, label=f"{name + ': ' if multiclass else ''}AUC {auc(fpr, tpr):.3f}")
        precision, recall, _ = precision_recall_curve(truth, score)
        average = average_precision_score(truth, score)
        pr_ax.plot(recall, precision, label=f"{name + ': ' if multiclass else ''}AP {average:.3f}")
    roc_ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
    roc_ax.set_xlabel("false positive rate")
    roc_ax.set_ylabel("true positive rate")
    roc_ax.set_title("ROC curves, one vs rest (test split)" if multiclass else "ROC curve (test split)")
    roc_ax.legend(loc="lower right")
    pr_ax.set_xlabel("recall")
    pr_ax.set_ylabel("precision")
    pr_ax.set_title(
        "Precision-recall, one vs rest (test split)" if multiclass else "Precision-recall curve (test split)"
    )
    pr_ax.legend(loc="lower left")
    roc, pr = folder / "roc_curve.png", folder / "precision_recall_curve.png"
    roc_fig.savefig(roc)
    pr_fig.savefig(pr)
    return [roc, pr]


def _one_vs_rest(y_true: Any, scores: Any, classes: Sequence[Any] | None) -> list[tuple[str, Any, Any]]:
    """(class name, is that class, its score) per curve; classes absent from the split have no curve."""
    import numpy as np

    y = np.asarray(y_true)
    if scores.shape[1] == 2:
        return [("positive", y == 1, scores[:, 1])]
    names = [str(c) for c in classes] if classes else [str(k) for k in range(scores.shape[1])]
    return [(names[k], y == k, scores[:, k]) for k in range(scores.shape[1]) if 0 < int((y == k).sum()) < len(y)]


def _regression(folder: Path, y_true: Any, predicted: Any) -> list[Path]:
    import numpy as np

    residuals = np.asarray(y_true) - np.asarray(predicted)
    fig = _figure()
    ax = fig.add_subplot()
    ax.scatter(predicted, residuals, s=8, alpha=0.6)
    ax.axhline(0.0, color="grey", linestyle="--")
    ax.set_xlabel("predicted")
    ax.set_ylabel("residual (actual - predicted)")
    ax.set_title("Residuals (test split)")
    residual_path = folder / "residuals.png"
    fig.savefig(residual_path)

    fig = _figure()
    ax = fig.add_subplot()
    ax.scatter(y_true, predicted, s=8, alpha=0.6)
    low, high = float(min(np.min(y_true), np.min(predicted))), float(max(np.max(y_true), np.max(predicted)))
    ax.plot([low, high], [low, high], color="grey", linestyle="--")
    ax.set_xlabel("actual")
    ax.set_ylabel("predicted")
    ax.set_title("Predicted vs actual (test split)")
    versus_path = folder / "predicted_vs_actual.png"
    fig.savefig(versus_path)
    return [residual_path, versus_path]


def _importance(path: Path, importances: dict[str, float], top: int = 20) -> Path:
    ranked = sorted(importances.items(), key=lambda item: abs(item[1]), reverse=True)[:top][::-1]
    fig = _figure(6.0, max(3.0, 0.25 * len(ranked) + 1))
    ax = fig.add_subplot()
    ax.barh([name for name, _ in ranked], [value for _, value in ranked])
    ax.set_xlabel("importance")
    ax.set_title("Feature importance")
    fig.savefig(path)
    return path


def feature_importances(estimator: Any, names: Sequence[str]) -> dict[str, float] | None:
    """Importances of a fitted estimator (``feature_importances_`` or ``coef_``), by feature name."""
    import numpy as np

    values = getattr(estimator, "feature_importances_", None)
    if values is None:
        coef = getattr(estimator, "coef_", None)
        if coef is None:
            return None
        coef = np.asarray(coef)
        values = np.abs(coef).mean(axis=0) if coef.ndim == 2 else np.abs(coef)
    values = np.asarray(values, dtype=float).ravel()
    if len(values) != len(names):
        return None
    return {str(name): float(value) for name, value in zip(names, values, strict=False)}
