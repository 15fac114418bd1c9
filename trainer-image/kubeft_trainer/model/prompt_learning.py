"""Prompt-learning methods: prefix tuning, prompt tuning and P-tuning (virtual tokens, no weight deltas).

Map `spec.method.{prefixTuning,promptTuning,pTuning}` onto PEFT's configs; PEFT fills in the
model dimensions. They prepend virtual tokens to every record, so batches are padded, never
packed. Called through :data:`kubeft_trainer.model.METHODS`.
"""

from __future__ import annotations

import inspect
from typing import Any

import peft

from kubeft_operator.api import methods
from kubeft_trainer import errors


def prefix_tuning(method: methods.MethodSpec, *, task_type: str, model: Any, total_steps: int, location: str) -> Any:
    params = method.prefix_tuning or methods.PrefixTuningParams()
    if task_type == "SEQ_CLS" and not _takes_past_key_values(model):
        raise errors.InvalidConfig(
            f"prefixTuning classifies by passing its prefix as `past_key_values`, which {type(model).__name__} "
            "(and its backbone) does not accept in this transformers version; use promptTuning or pTuning for SEQ_CLS"
        )
    kwargs: dict[str, Any] = {}
    if params.encoder_hidden_size is not None:
        kwargs["encoder_hidden_size"] = params.encoder_hidden_size
    return peft.PrefixTuningConfig(
        task_type=task_type,
        num_virtual_tokens=params.num_virtual_tokens,
        prefix_projection=params.projection,
        **kwargs,
    )


def prompt_tuning(method: methods.MethodSpec, *, task_type: str, model: Any, total_steps: int, location: str) -> Any:
    params = method.prompt_tuning or methods.PromptTuningParams()
    kwargs: dict[str, Any] = {}
    if params.init == "text":
        kwargs.update(
            prompt_tuning_init=peft.PromptTuningInit.TEXT,
            prompt_tuning_init_text=params.init_text,
            tokenizer_name_or_path=location,
        )
    return peft.PromptTuningConfig(task_type=task_type, num_virtual_tokens=params.num_virtual_tokens, **kwargs)


def p_tuning(method: methods.MethodSpec, *, task_type: str, model: Any, total_steps: int, location: str) -> Any:
    params = method.p_tuning or methods.PTuningParams()
    return peft.PromptEncoderConfig(
        task_type=task_type,
        num_virtual_tokens=params.num_virtual_tokens,
        encoder_hidden_size=params.encoder_hidden_size,
        encoder_reparameterization_type=params.encoder_type,
    )


def _takes_past_key_values(model: Any) -> bool:
    """PEFT's own test for sequence classification: the model's or its backbone's forward takes it."""
    backbone = getattr(model, getattr(model, "base_model_prefix", ""), None)
    candidates = [model, backbone] if backbone is not None else [model]
    return any("past_key_values" in inspect.signature(m.forward).parameters for m in candidates)
