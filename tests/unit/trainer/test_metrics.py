"""Accuracy and macro F1 over labelled positions; perplexity from the loss."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kubeft_trainer.train import metrics


def test_accuracy_and_macro_f1() -> None:
    scores = metrics.accuracy_f1(np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 1, 2]))
    assert scores["accuracy"] == pytest.approx(0.8)
    # per class F1: 0 -> 2/3, 1 -> 0.8, 2 -> 1.0
    assert scores["f1"] == pytest.approx((2 / 3 + 0.8 + 1.0) / 3)


def test_macro_f1_exposes_a_majority_class_guesser() -> None:
    labels = np.array([0] * 9 + [1])
    scores = metrics.accuracy_f1(np.zeros(10, dtype=int), labels)
    assert scores["accuracy"] == pytest.approx(0.9)
    assert scores["f1"] < 0.5


def test_ignored_positions_do_not_count() -> None:
    scores = metrics.accuracy_f1(np.array([[1, 5, 0]]), np.array([[1, -100, 0]]))
    assert scores == {"accuracy": 1.0, "f1": 1.0}


def test_perplexity_is_exp_of_the_loss() -> None:
    assert metrics.perplexity(math.log(20)) == pytest.approx(20)
    assert metrics.perplexity(1e6) == math.inf


@pytest.mark.parametrize(
    ("task", "requested", "want"),
    [
        ("SEQ_CLS", [], ["accuracy", "f1"]),
        ("TOKEN_CLS", ["f1"], ["f1"]),
        ("CAUSAL_LM", [], ["perplexity"]),
        ("CAUSAL_LM", ["accuracy", "perplexity"], ["perplexity"]),
        ("QUESTION_ANS", [], []),
    ],
)
def test_metrics_follow_the_task(task: str, requested: list[str], want: list[str]) -> None:
    assert metrics.wanted(task, requested) == want
