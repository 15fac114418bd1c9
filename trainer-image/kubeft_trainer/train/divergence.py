"""Divergence detection: NaN/inf loss, or a smoothed loss that runs away from its best value.

Pure logic, fed every logged training loss by :class:`kubeft_trainer.train.callbacks.DivergenceStop`.
"""

from __future__ import annotations

import math

# The best value the factor applies to never goes below this, so that a loss wandering near
# zero at the end of an easy run (0.001 -> 0.01) is not taken for a blow-up.
BEST_FLOOR = 0.25
# Weight of the previous smoothed value in the exponential moving average. Low, so a real
# blow-up is caught within a few logged steps.
SMOOTHING = 0.5


class Guard:
    """Feed it each logged loss; it returns a message once the run has diverged."""

    def __init__(self, *, max_loss_factor: float, patience_steps: int) -> None:
        self.factor = max_loss_factor
        self.patience = patience_steps
        self.smoothed: float | None = None
        self.best: float | None = None
        self.over = 0

    @property
    def outside_bound(self) -> bool:
        """The latest logged loss was non-finite or its smoothed value above the bound."""
        return self.over > 0

    def observe(self, loss: float, *, step: int) -> str | None:
        if not math.isfinite(loss):
            # One NaN/inf (an fp16 overflow the scaler then skips) counts like any step out of bound;
            # it never enters the average, which would stay NaN for ever.
            self.over += 1
            if self.over >= self.patience:
                return (
                    f"the training loss became {loss} at step {step} ({self.over} logged steps out of bound in a "
                    "row); lower spec.training.learningRate"
                )
            return None
        self.smoothed = loss if self.smoothed is None else SMOOTHING * self.smoothed + (1 - SMOOTHING) * loss
        self.best = self.smoothed if self.best is None else min(self.best, self.smoothed)
        bound = self.factor * max(self.best, BEST_FLOOR)
        self.over = self.over + 1 if self.smoothed > bound else 0
        if self.over >= self.patience:
            return (
                f"the smoothed training loss {self.smoothed:.4g} at step {step} stayed above {self.factor:g}x its "
                f"best value {self.best:.4g} for {self.over} logged steps; lower spec.training.learningRate "
                "(1e-4 to 3e-4 suits LoRA)"
            )
        return None
