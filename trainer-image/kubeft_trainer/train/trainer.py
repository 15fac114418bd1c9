"""The Trainer subclasses the pipeline runs: perplexity next to every eval loss, and contrastive loss.

Used by :func:`kubeft_trainer.train.run`.
"""

from __future__ import annotations

from typing import Any

import torch
import transformers

from kubeft_trainer.train import contrastive, metrics


class Trainer(transformers.Trainer):
    """transformers.Trainer that adds `eval_perplexity` wherever an `eval_loss` is logged."""

    def __init__(self, *args: Any, perplexity: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.perplexity = perplexity

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if self.perplexity and "eval_loss" in logs:
            # In place: evaluate() returns this same dict.
            logs["eval_perplexity"] = metrics.perplexity(logs["eval_loss"])
        super().log(logs, start_time)


class ContrastiveTrainer(Trainer):
    """FEATURE_EXTRACTION: in-batch-negatives contrastive loss over mean-pooled (text, pair) embeddings."""

    def compute_loss(
        self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        loss = contrastive.contrastive_loss(
            contrastive.embed(model, inputs), contrastive.embed(model, inputs, prefix="pair_")
        )
        return (loss, {}) if return_outputs else loss

    def prediction_step(
        self, model: Any, inputs: dict[str, Any], prediction_loss_only: bool, ignore_keys: Any = None
    ) -> tuple[torch.Tensor, None, None]:
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None
