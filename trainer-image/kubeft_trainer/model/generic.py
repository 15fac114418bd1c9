"""The peft config of a method the registry describes completely: no code of its own needed.

A registry entry (kubeft_operator/api/methods.py) with ``peft_config`` (a class of the ``peft``
package) and ``peft_params`` (which of its parameters feeds which peft argument) is built here:
the parameters are copied over, and ``targetModules`` is resolved against the model when the
method targets modules. LoRA and QLoRA are built this way; a new method of that kind is one entry
in the registry. Methods with extra rules (IA3's feed-forward subset, AdaLoRA's schedule, the
prompt-learning methods) keep a builder of their own.
"""

from __future__ import annotations

from typing import Any

import peft

from kubeft_operator.api import methods
from kubeft_trainer.model import targets


def config(method: methods.MethodSpec, *, task_type: str, model: Any, total_steps: int, location: str) -> Any:
    entry = methods.METHODS[str(method.type)]
    assert entry.peft_config is not None, f"{entry.name} has no peft_config; it needs a builder of its own"
    params = methods.params_of(method)
    kwargs = {peft_name: getattr(params, ours) for ours, peft_name in entry.peft_params}
    if entry.targets_modules:
        field = f"spec.method.{entry.block}.targetModules"
        kwargs["target_modules"] = targets.resolve(model, getattr(params, "target_modules", None), field=field)
    return getattr(peft, entry.peft_config)(task_type=task_type, **kwargs)
