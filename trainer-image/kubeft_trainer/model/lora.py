"""LoRA and QLoRA: low-rank updates beside frozen weights (QLoRA: the base is loaded 4-bit first).

Maps `spec.method.lora` onto `peft.LoraConfig`. Called through :data:`kubeft_trainer.model.METHODS`.
"""

from __future__ import annotations

from typing import Any

import peft

from kubeft_operator.api import methods as api_methods
from kubeft_trainer.model import targets


def config(method: api_methods.MethodSpec, *, task_type: str, model: Any, total_steps: int, location: str) -> Any:
    params = method.lora or api_methods.LoraParams()
    return peft.LoraConfig(
        task_type=task_type,
        r=params.r,
        lora_alpha=params.alpha,
        lora_dropout=params.dropout,
        target_modules=targets.resolve(model, params.target_modules, field="spec.method.lora.targetModules"),
        bias=params.bias,
        use_rslora=params.use_rslora,
    )
