"""FEATURE_EXTRACTION training: mean-pooled embeddings, contrastive loss with in-batch negatives.

Each record is a positive pair (`text`, `pair`); every other pair in the batch serves as a
negative (the multiple-negatives ranking loss of sentence-transformers). Used by
:class:`kubeft_trainer.train.trainer.ContrastiveTrainer`.
"""

from __future__ import annotations

from typing import Any

import torch

SCALE = 20.0  # inverse temperature on cosine similarities


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average the token states under the mask. Virtual tokens (prompt learning) come first and count."""
    if hidden.shape[1] > attention_mask.shape[1]:
        extra = hidden.shape[1] - attention_mask.shape[1]
        attention_mask = torch.cat([attention_mask.new_ones(attention_mask.shape[0], extra), attention_mask], dim=1)
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


def embed(model: Any, inputs: dict[str, torch.Tensor], *, prefix: str = "") -> torch.Tensor:
    keys = ("input_ids", "attention_mask", "token_type_ids")
    batch = {k: inputs[prefix + k] for k in keys if prefix + k in inputs}
    output = model(**batch)
    hidden = output.last_hidden_state if hasattr(output, "last_hidden_state") else output[0]
    return mean_pool(hidden, batch["attention_mask"])


def contrastive_loss(anchors: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    a = torch.nn.functional.normalize(anchors.float(), dim=-1)
    p = torch.nn.functional.normalize(positives.float(), dim=-1)
    scores = SCALE * a @ p.T
    return torch.nn.functional.cross_entropy(scores, torch.arange(len(scores), device=scores.device))
