"""Stage 3: the base model wrapped with the PEFT method of `spec.method`.

Which function builds which method's peft config is declared in the method registry
(kubeft_operator/api/methods.py): :mod:`.generic` for methods the registry describes completely
(lora, qlora), else one module per method family (peft-style): :mod:`.ia3`, :mod:`.adalora`,
:mod:`.prompt_learning` (prefixTuning, promptTuning, pTuning). :mod:`.base` loads the checkpoint, :mod:`.targets` checks
targetModules. Called by :mod:`kubeft_trainer.pipeline`.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import Any, cast

import peft

from kubeft_operator.api import methods
from kubeft_trainer import config as trainer_config
from kubeft_trainer import errors
from kubeft_trainer.model import base, targets

log = logging.getLogger(__name__)


def builder(method: str) -> Callable[..., Any]:
    """The peft config builder the method registry (kubeft_operator/api/methods.py) names for `method`."""
    module, _, function = methods.METHODS[method].builder.partition(":")
    return cast(Callable[..., Any], getattr(importlib.import_module(module), function))


def check_runtime(cfg: trainer_config.TrainerConfig) -> None:
    """Fail before any download when the spec asks for what this machine lacks (quantization without a GPU)."""
    if cfg.spec.model.quantization is not None:
        base.quantization_kwargs(cfg.spec.model.quantization)


def build(
    cfg: trainer_config.TrainerConfig,
    location: str,
    *,
    tokenizer: Any,
    labels: list[str] | None,
    total_steps: int,
) -> peft.PeftModel:
    """Load the base model and apply the PEFT method; logs trainable vs all parameters."""
    spec = cfg.spec
    model = base.load_model(cfg, location, labels=labels, tokenizer=tokenizer)
    if spec.model.quantization is not None and cfg.parallelism != "fsdp":
        # Not under FSDP: it casts the unquantized weights to fp32, and FSDP shards a unit's weights
        # in one dtype (the 4-bit storage dtype, base.quantization_kwargs); FSDP checkpoints activations itself.
        model = peft.prepare_model_for_kbit_training(  # type: ignore[no-untyped-call]  # unannotated in peft
            model, use_gradient_checkpointing=spec.training.gradient_checkpointing
        )
    peft_config = builder(spec.method.type)(
        spec.method, task_type=spec.task, model=model, total_steps=total_steps, location=location
    )
    try:
        peft_model: peft.PeftModel = peft.get_peft_model(model, peft_config)
    except ValueError as exc:
        text = str(exc)
        if "arget modules" in text or "target_modules" in text:
            field = f"spec.method.{methods.METHODS[spec.method.type].block}.targetModules"
            raise targets.not_found(model, exc, field=field) from exc
        raise errors.InvalidConfig(f"PEFT rejected spec.method ({spec.method.type}): {exc}") from exc
    # Recorded in adapter_config.json, where AutoPeftModel* looks for the base model.
    peft_model.peft_config["default"].base_model_name_or_path = spec.model.source
    if not spec.model.source.startswith(("/", "s3://")):
        peft_model.peft_config["default"].revision = spec.model.revision
    trainable, total = peft_model.get_nb_trainable_parameters()
    log.info(
        "%s on %s: trainable params %s of %s (%.4f%%)",
        spec.method.type,
        type(model).__name__,
        f"{trainable:,}",
        f"{total:,}",
        100 * trainable / max(total, 1),
    )
    return peft_model
