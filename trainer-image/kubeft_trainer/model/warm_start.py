"""`spec.resumeFrom`: start training from an earlier run's adapter weights (a warm start).

Only the adapter weights carry over: the optimizer state, the learning-rate schedule and the step
count start fresh, with this run's training settings (the field's help text says so). The source
is an exported adapter or a checkpoint directory, in S3 or on a local path; only
`adapter_config.json` and `adapter_model.safetensors` are read. Its shape must match the freshly
built adapter (same PEFT type, rank, target modules, virtual tokens...), else the run stops with
InvalidConfig before training, naming the difference. Called by :mod:`kubeft_trainer.pipeline`
when this run has no checkpoint of its own yet (a retry resumes its own checkpoint instead).
"""

from __future__ import annotations

import json
import logging
import pathlib
from typing import Any

import peft
import safetensors.torch

from kubeft_trainer import config as trainer_config
from kubeft_trainer import errors, storage

log = logging.getLogger(__name__)

FILES = ("adapter_config.json", "adapter_model.safetensors")
# adapter_config.json keys that decide the shape of the adapter's tensors.
SHAPE_KEYS = (
    "peft_type",
    "r",
    "init_r",
    "target_modules",
    "feedforward_modules",
    "num_virtual_tokens",
    "prefix_projection",
    "encoder_hidden_size",
    "encoder_reparameterization_type",
)


def fetch(cfg: trainer_config.TrainerConfig, s3: Any) -> pathlib.Path:
    """The source's two adapter files in a local directory (downloaded from S3 when it is an s3:// URI)."""
    source = str(cfg.resume_from)
    if not storage.is_s3(source):
        directory = pathlib.Path(source)
        missing = [f for f in FILES if not (directory / f).is_file()]
        if missing:
            raise errors.InvalidConfig(f"spec.resumeFrom: {source} has no {' or '.join(missing)}")
        return directory
    if s3 is None:
        raise errors.InvalidConfig("spec.resumeFrom is an s3:// URI but the spec has no S3 storage settings")
    root = storage.S3Uri.parse(source)
    dest = cfg.run_dir / "resume-source"
    for name in FILES:
        try:
            storage.download_file(s3, root.join(name), dest / name)
        except Exception as exc:
            code = storage.error_code(exc)
            if code in ("404", "NoSuchKey", "NotFound"):
                raise errors.InvalidConfig(
                    f"spec.resumeFrom: {source} holds no {name}; point it at an exported adapter or a "
                    "checkpoint-<step> directory"
                ) from exc
            raise
    return dest


def mismatch(source: dict[str, Any], target: dict[str, Any]) -> str | None:
    """The first shape-deciding setting that differs between two adapter configs, described; None if none."""
    for key in SHAPE_KEYS:
        old, new = _norm(source.get(key)), _norm(target.get(key))
        if old != new:
            return f"{key} is {new!r} for this run but {old!r} in the adapter resumed from"
    return None


def _norm(value: Any) -> Any:
    if isinstance(value, list | set | tuple):
        return sorted(str(v) for v in value)
    return value.value if hasattr(value, "value") else value


def load(model: Any, directory: pathlib.Path, *, uri: str) -> int:
    """Check the source's shape against `model`'s adapter, then load its weights; returns the tensors loaded."""
    source = json.loads((directory / "adapter_config.json").read_text())
    target = model.peft_config["default"].to_dict()
    problem = mismatch(source, target)
    if problem is not None:
        raise errors.InvalidConfig(f"spec.resumeFrom {uri} cannot be loaded: {problem}")
    state = safetensors.torch.load_file(str(directory / "adapter_model.safetensors"))
    try:
        result = peft.set_peft_model_state_dict(model, state)
    except RuntimeError as exc:
        raise errors.InvalidConfig(f"spec.resumeFrom {uri} cannot be loaded: {str(exc).splitlines()[0]}") from exc
    unexpected = list(getattr(result, "unexpected_keys", []) or [])
    if unexpected:
        raise errors.InvalidConfig(
            f"spec.resumeFrom {uri} cannot be loaded: {len(unexpected)} tensors do not fit this adapter "
            f"(first: {unexpected[0]})"
        )
    log.info(
        "starting from the adapter weights of %s (%d tensors); optimizer, schedule and step count start fresh",
        uri,
        len(state),
    )
    return len(state)
