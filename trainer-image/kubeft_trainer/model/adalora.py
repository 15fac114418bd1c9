"""AdaLoRA: LoRA whose rank budget moves between layers as training goes.

Maps `spec.method.adalora` onto `peft.AdaLoraConfig`. The budget schedule needs the total step
count, and the Trainer must call `update_and_allocate` after every optimizer step (see
:class:`kubeft_trainer.train.callbacks.AdaLoraBudget`). Called through
:data:`kubeft_trainer.model.METHODS`.
"""

from __future__ import annotations

from typing import Any

import peft

from kubeft_operator.api import methods as api_methods
from kubeft_trainer import errors
from kubeft_trainer.model import targets


def config(method: api_methods.MethodSpec, *, task_type: str, model: Any, total_steps: int, location: str) -> Any:
    params = method.adalora or api_methods.AdaLoraParams()
    if params.tinit + params.tfinal >= total_steps:
        raise errors.InvalidConfig(
            f"`spec.method.adalora`: tinit ({params.tinit}) + tfinal ({params.tfinal}) must be below the "
            f"{total_steps} training steps, or no step is left to reallocate ranks"
        )
    if params.target_r > params.init_r:
        raise errors.InvalidConfig("`spec.method.adalora.targetR` must not exceed `initR`")
    return peft.AdaLoraConfig(
        task_type=task_type,
        init_r=params.init_r,
        target_r=params.target_r,
        tinit=params.tinit,
        tfinal=params.tfinal,
        deltaT=params.delta_t,
        lora_alpha=params.alpha,
        lora_dropout=params.dropout,
        total_step=total_steps,
        target_modules=targets.resolve(model, params.target_modules, field="spec.method.adalora.targetModules"),
    )
