"""Evaluation metrics: accuracy and macro F1 for classification, perplexity for language models.

`compute_metrics` only reports; it never changes training. Pure numpy, no scikit-learn import
on the hot path. Used by :func:`kubeft_trainer.train.run`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

IGNORE = -100
CLASSIFICATION_TASKS = ("SEQ_CLS", "TOKEN_CLS")
LM_TASKS = ("CAUSAL_LM", "SEQ_2_SEQ_LM")


def wanted(task: str, requested: Sequence[str]) -> list[str]:
    """The metrics to compute: those requested that apply to the task, or the task's defaults."""
    applicable = ["accuracy", "f1"] if task in CLASSIFICATION_TASKS else ["perplexity"] if task in LM_TASKS else []
    if not requested:
        return applicable
    return [m for m in requested if m in applicable]


def accuracy_f1(predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy and macro F1 over the positions whose label is not IGNORE."""
    predictions = np.asarray(predictions).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    keep = labels != IGNORE
    predictions, labels = predictions[keep], labels[keep]
    if labels.size == 0:
        return {"accuracy": float("nan"), "f1": float("nan")}
    f1s = []
    for cls in np.union1d(labels, predictions):
        tp = np.sum((predictions == cls) & (labels == cls))
        fp = np.sum((predictions == cls) & (labels != cls))
        fn = np.sum((predictions != cls) & (labels == cls))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return {"accuracy": float(np.mean(predictions == labels)), "f1": float(np.mean(f1s))}


def perplexity(loss: float) -> float:
    return math.exp(loss) if loss < 700 else math.inf


def argmax_logits(logits: Any, labels: Any) -> Any:
    """Keep only the argmax on the device, so evaluation does not gather full logits."""
    if isinstance(logits, tuple):
        logits = logits[0]
    return logits.argmax(dim=-1)


def compute_metrics_for(names: Sequence[str]) -> Callable[[Any], dict[str, float]] | None:
    """A Trainer `compute_metrics` for the classification metrics in `names` (None if there are none)."""
    selected = [n for n in names if n in ("accuracy", "f1")]
    if not selected:
        return None

    def compute(prediction: Any) -> dict[str, float]:
        predictions = prediction.predictions
        labels = prediction.label_ids
        # Prompt-learning heads prepend virtual tokens; align on the trailing positions.
        if predictions.ndim == 2 and labels.ndim == 2 and predictions.shape[1] != labels.shape[1]:
            predictions = predictions[:, -labels.shape[1] :]
        scores = accuracy_f1(predictions, labels)
        return {name: scores[name] for name in selected}

    return compute
