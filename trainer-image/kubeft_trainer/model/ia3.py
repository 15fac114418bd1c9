"""IA3: learned vectors that rescale the activations of the targeted modules.

Maps `spec.method.ia3` onto `peft.IA3Config`. Called through :data:`kubeft_trainer.model.METHODS`.
"""

from __future__ import annotations

from typing import Any

import peft

from kubeft_operator.api import methods as api_methods
from kubeft_trainer import errors
from kubeft_trainer.model import targets


def config(method: api_methods.MethodSpec, *, task_type: str, model: Any, total_steps: int, location: str) -> Any:
    params = method.ia3 or api_methods.Ia3Params()
    target = targets.resolve(model, params.target_modules, field="spec.method.ia3.targetModules")
    feedforward = targets.resolve(model, params.feedforward_modules, field="spec.method.ia3.feedforwardModules")
    if feedforward is not None and target is None:
        raise errors.InvalidConfig("`spec.method.ia3.feedforwardModules` needs `targetModules` as well")
    if isinstance(feedforward, list) and isinstance(target, list):
        extra = sorted(set(feedforward) - set(target))
        if extra:
            raise errors.InvalidConfig(
                "`spec.method.ia3.feedforwardModules` must be a subset of `targetModules`; "
                f"not there: {', '.join(extra)}"
            )
    if target is not None and feedforward is None:
        feedforward = []
    return peft.IA3Config(task_type=task_type, target_modules=target, feedforward_modules=feedforward)
