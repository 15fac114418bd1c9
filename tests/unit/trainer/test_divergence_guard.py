"""The divergence guard: NaN/inf or a runaway smoothed loss for `patience` logged steps in a row, nothing else."""

from __future__ import annotations

import math

import pytest

from kubeft_trainer.train import divergence


def feed(losses: list[float], *, factor: float = 4.0, patience: int = 3) -> tuple[int, str] | None:
    guard = divergence.Guard(max_loss_factor=factor, patience_steps=patience)
    for step, loss in enumerate(losses, start=1):
        message = guard.observe(loss, step=step)
        if message:
            return step, message
    return None


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_losses_diverge_after_patience(bad: float) -> None:
    stopped = feed([2.0, 1.9, bad, bad, bad, 1.8])
    assert stopped is not None
    assert stopped[0] == 5
    assert "became" in stopped[1] and "3 logged steps" in stopped[1]


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_a_single_non_finite_loss_is_forgiven_and_never_poisons_the_average(bad: float) -> None:
    guard = divergence.Guard(max_loss_factor=4.0, patience_steps=3)
    assert guard.observe(2.0, step=1) is None
    assert guard.observe(bad, step=2) is None
    assert guard.outside_bound
    assert guard.observe(1.9, step=3) is None
    assert not guard.outside_bound
    assert guard.smoothed is not None and math.isfinite(guard.smoothed)
    assert feed([2.0, bad, 1.9, bad, 1.8, bad, 1.7] * 5) is None


def test_patience_one_stops_at_the_first_non_finite_loss() -> None:
    stopped = feed([2.0, math.nan], patience=1)
    assert stopped is not None and stopped[0] == 2


def test_decreasing_loss_never_diverges() -> None:
    assert feed([3.0 * 0.97**i for i in range(200)]) is None


def test_noisy_but_stable_loss_never_diverges() -> None:
    assert feed([2.0 + (0.5 if i % 2 else -0.5) for i in range(200)]) is None


def test_runaway_loss_diverges_after_patience() -> None:
    stopped = feed([2.0, 1.8, 1.7, 30.0, 40.0, 50.0, 60.0])
    assert stopped is not None
    step, message = stopped
    assert step == 6
    assert "learningRate" in message


def test_single_spike_is_forgiven() -> None:
    assert feed([2.0, 1.8, 1.7, 40.0, 1.6, 1.5, 1.5, 1.4]) is None


def test_near_zero_losses_do_not_trip_the_ratio() -> None:
    assert feed([0.5, 0.05, 0.002, 0.01, 0.02, 0.03, 0.04]) is None


def test_larger_factor_tolerates_more() -> None:
    losses = [2.0, 2.0, 12.0, 12.0, 12.0, 12.0]
    assert feed(losses, factor=4.0) is not None
    assert feed(losses, factor=8.0) is None
