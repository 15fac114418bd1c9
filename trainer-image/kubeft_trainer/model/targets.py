"""Check `targetModules` against the model before PEFT sees them, and say which modules do exist.

A wrong `targetModules` is the most common LoRA failure; PEFT's own error names none of the
valid choices. Entries are matched as PEFT matches a list (the full module name or a
`.`-separated suffix of it); entries with `*`, `?` or `[` are globs, expanded to the module
names they match. Used by the method modules in this package.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import Any

import torch

from kubeft_trainer import errors

ALL_LINEAR = "all-linear"
_GLOB = set("*?[")


def adaptable_modules(model: torch.nn.Module) -> list[str]:
    """Full names of the modules PEFT can adapt: linear, conv and embedding layers (not the LM head)."""
    from transformers import pytorch_utils

    kinds = (torch.nn.Linear, torch.nn.Embedding, torch.nn.Conv1d, torch.nn.Conv2d, pytorch_utils.Conv1D)
    return [name for name, module in model.named_modules() if name and isinstance(module, kinds)]


def suffix_choices(names: Sequence[str], *, limit: int = 40) -> str:
    """The distinct last components of `names`, for an error message."""
    leaves = sorted({n.rsplit(".", 1)[-1] for n in names})
    shown = ", ".join(leaves[:limit]) + (f", ... ({len(leaves) - limit} more)" if len(leaves) > limit else "")
    example = f" (e.g. {names[len(names) // 2]})" if names else ""
    return f"{shown}{example}"


def matches(name: str, target: str) -> bool:
    if _GLOB & set(target):
        return fnmatch.fnmatchcase(name, target) or fnmatch.fnmatchcase(name, f"*.{target}")
    return name == target or name.endswith(f".{target}")


def resolve(model: torch.nn.Module, targets: Sequence[str] | None, *, field: str) -> list[str] | str | None:
    """`targets` as PEFT takes them, after checking each matches at least one module.

    None (PEFT's per-architecture default) and `all-linear` pass through unchanged.
    """
    if targets is None:
        return None
    if list(targets) == [ALL_LINEAR]:
        return ALL_LINEAR
    names = [name for name, _ in model.named_modules() if name]
    missing = [t for t in targets if t == ALL_LINEAR or not any(matches(n, t) for n in names)]
    if missing:
        raise errors.TargetModulesNotFound(
            f"`{field}`: {', '.join(missing)} match no module of this {model_type(model)} model "
            f"(`all-linear` must be the only entry when used). Modules that can be adapted: "
            f"{suffix_choices(adaptable_modules(model))}"
        )
    resolved: list[str] = []
    for t in targets:
        if _GLOB & set(t):
            resolved += [n for n in names if matches(n, t)]
        else:
            resolved.append(t)
    return list(dict.fromkeys(resolved))


def not_found(model: torch.nn.Module, exc: Exception, *, field: str) -> errors.TargetModulesNotFound:
    """Wrap PEFT's own "target modules not found" (e.g. with its per-architecture default)."""
    return errors.TargetModulesNotFound(
        f"`{field}`: {exc}. Modules that can be adapted: {suffix_choices(adaptable_modules(model))}"
    )


def model_type(model: Any) -> str:
    return str(getattr(getattr(model, "config", None), "model_type", type(model).__name__))
