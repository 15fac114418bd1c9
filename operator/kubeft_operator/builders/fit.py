"""The fit estimate at admission: spec -> status.estimate, condition Fits, and the refusal.

Pure; called by the reconciler before it creates any child, and by :mod:`kubeft_operator.status`
for the condition. The arithmetic is :mod:`kubeft_operator.api.estimate`; this module picks its
inputs from the spec (``spec.model.config``, dtype, quantization, method, ``dataset.maxLength``,
``training.batchSize``, gradient checkpointing) and the GPU memory the operator declares for the
job's GPUs (``Settings.gpu_memory_gib``). Nothing is fetched: without ``spec.model.config`` there
is no estimate, and without a declaration for the job's GPUs no verdict.
"""

from __future__ import annotations

from typing import Any

from kubeft_operator import config
from kubeft_operator.api import estimate, methods
from kubeft_operator.api import spec as spec_models
from kubeft_operator.builders import rendezvous

REASON_FITS = "FitsGpuMemory"
REASON_EXCEEDS = "InsufficientGpuMemory"
_LM_TASKS = ("CAUSAL_LM", "SEQ_2_SEQ_LM")


def run_of(spec: spec_models.FineTuneJobSpec) -> estimate.Run:
    """What the trainer will do, in the estimator's terms."""
    params: Any = methods.params_of(spec.method)
    on_gpu = spec.resources.gpus > 0
    dtype = spec.model.dtype if spec.model.dtype != "auto" else ("bfloat16" if on_gpu else "float32")
    quantization = spec.model.quantization
    method = str(spec.method.type)
    encoder = getattr(params, "encoder_hidden_size", None)
    rank: int = getattr(params, "init_r", None) or getattr(params, "r", None) or 16
    if method == "prefixTuning" and not params.projection:
        encoder = None
    return estimate.Run(
        method=method,
        weight_dtype=dtype,
        quantization_bits=quantization.bits if quantization is not None else None,
        rank=rank,
        target_modules=getattr(params, "target_modules", None),
        feedforward_modules=getattr(params, "feedforward_modules", None),
        num_virtual_tokens=getattr(params, "num_virtual_tokens", 20),
        encoder_hidden_size=encoder,
        sequence_length=spec.dataset.max_length,
        batch_size=spec.training.batch_size,
        gradient_checkpointing=spec.training.gradient_checkpointing,
        vocab_logits=str(spec.task) in _LM_TASKS,
        on_gpu=on_gpu,
    )


def declared(spec: spec_models.FineTuneJobSpec, settings: config.Settings) -> tuple[str, float] | None:
    """(declaration, GiB) of the job's GPUs: a node label of its nodeSelector first (the GPU product), then its
    GPU resource name; None for a CPU job or GPUs the operator declares nothing for."""
    if spec.resources.gpus == 0:
        return None
    table = dict(settings.gpu_memory_gib)
    selector = (spec.scheduling.node_selector if spec.scheduling else None) or {}
    for key in sorted(selector):
        label = f"{key}={selector[key]}"
        if label in table:
            return label, table[label]
    name = spec.resources.gpu_resource_name
    return (name, table[name]) if name in table else None


def _gib(value: int) -> float:
    return round(value / estimate.GIB, 2)


def assess(spec: spec_models.FineTuneJobSpec, settings: config.Settings) -> dict[str, Any] | None:
    """status.estimate (wire form), or None without spec.model.config."""
    shape_spec = spec.model.config
    if shape_spec is None:
        return None
    shape = estimate.Shape(**shape_spec.model_dump())
    result = estimate.estimate(shape, run_of(spec))
    out: dict[str, Any] = {
        "totalGib": _gib(result.total),
        "weightsGib": _gib(result.weights),
        "adapterGib": _gib(result.adapter),
        "activationsGib": _gib(result.activations),
        "overheadGib": _gib(result.overhead),
        "trainableParams": result.trainable_params,
    }
    gpu = declared(spec, settings)
    if gpu is not None:
        out["gpu"], out["gpuMemoryGib"] = gpu
    shards = rendezvous.processes(spec)
    if shards > 1 and _sharded(spec, out):
        # FSDP splits the frozen weights and the trainable state over every process; activations
        # and the CUDA context stay per GPU.
        weights, adapter = result.weights / shards, result.adapter / shards
        total = weights + adapter + result.activations + result.overhead
        out.update(totalGib=_gib(int(total)), weightsGib=_gib(int(weights)), adapterGib=_gib(int(adapter)))
        out["shardedOver"] = shards
    return out


def _sharded(spec: spec_models.FineTuneJobSpec, replica: dict[str, Any]) -> bool:
    """Whether the trainer shards (fsdp): asked for, or ``auto`` and one replica exceeds the GPU's memory."""
    if spec.training.parallelism != "auto":
        return spec.training.parallelism == "fsdp"
    return "gpuMemoryGib" in replica and replica["totalGib"] > replica["gpuMemoryGib"]


def verdict(found: dict[str, Any] | None) -> tuple[bool, str, str] | None:
    """Condition Fits as (status, reason, message), or None when there is nothing to compare."""
    if found is None or "gpuMemoryGib" not in found:
        return None
    total, limit = found["totalGib"], found["gpuMemoryGib"]
    parts = (
        f"weights {found['weightsGib']}, adapter and optimizer {found['adapterGib']}, activations "
        f"{found['activationsGib']}, overhead {found['overheadGib']}"
    )
    if "shardedOver" in found:
        parts += f"; weights and trainable state sharded over {found['shardedOver']} processes (FSDP)"
    if total <= limit:
        return True, REASON_FITS, f"estimated {total} GiB per GPU ({parts}) fits the {limit:g} GiB of {found['gpu']}"
    return (
        False,
        REASON_EXCEEDS,
        (
            f"estimated {total} GiB per GPU ({parts}) exceeds the {limit:g} GiB of {found['gpu']}; quantize the base, "
            "turn on gradient checkpointing, lower training.batchSize or dataset.maxLength, or ask for larger GPUs"
        ),
    )


def refusal(spec: spec_models.FineTuneJobSpec, found: dict[str, Any] | None) -> str | None:
    """Why the job must not start (spec.resources.failIfNotFits and an estimate over the GPU's memory), or None."""
    said = verdict(found)
    if not spec.resources.fail_if_not_fits or said is None or said[0]:
        return None
    return said[2]


def parallelism(spec: spec_models.FineTuneJobSpec, settings: config.Settings) -> str:
    """``ddp`` or ``fsdp``: spec.training.parallelism, with ``auto`` decided here.

    ``auto`` shards (fsdp) when there is more than one process to shard over and the fit estimate of
    one whole replica exceeds the GPU memory the operator declares for the job's GPUs; without an
    estimate (no spec.model.config) or a declaration, or on one process, it is ddp.
    """
    chosen = spec.training.parallelism
    if chosen != "auto":
        return chosen
    found = assess(spec, settings)
    return "fsdp" if found is not None and "shardedOver" in found else "ddp"
