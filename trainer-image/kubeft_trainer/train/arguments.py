"""`transformers.TrainingArguments` from `spec.training` and the hardware found at run time.

Defaults chosen for speed: no gradient checkpointing unless asked, bf16 where the GPU has it,
fused AdamW on CUDA, pinned memory and data-loader workers on GPU machines (none on CPU, where
worker start-up costs more than the already-tokenized batches save), no tqdm. Called by
:func:`kubeft_trainer.train.run`.

With `parallelism: fsdp`, :func:`fsdp_config` shards the model fully across the ranks (FSDP2,
transformers' default; see docs/trainer.md, "Sharding inside a pod").
"""

from __future__ import annotations

import logging
import math
import pathlib
from typing import Any

import torch
import transformers

from kubeft_operator.api import spec as api_spec
from kubeft_trainer import cpus, devices, errors

log = logging.getLogger(__name__)


def precision(requested: str) -> str:
    """bf16, fp16 or fp32, resolving `auto` for this machine; InvalidConfig for what it cannot do."""
    cuda = torch.cuda.is_available()
    bf16 = devices.bf16_supported()
    if requested == "auto":
        return "bf16" if bf16 else "fp16" if cuda else "fp32"
    if requested == "fp16" and not cuda:
        raise errors.InvalidConfig("`spec.training.precision: fp16` needs a GPU; use auto, bf16 or fp32")
    if requested == "bf16" and cuda and not bf16:
        raise errors.InvalidConfig("this GPU has no bf16; use `spec.training.precision: fp16` or auto")
    return requested


def planned_steps(training: api_spec.TrainingSpec, *, records: int, world_size: int = 1) -> int:
    """Optimizer steps the run will take (maxSteps, or epochs over the data)."""
    if training.max_steps is not None:
        return training.max_steps
    per_step = training.batch_size * training.gradient_accumulation_steps * world_size
    steps_per_epoch = max(1, math.ceil(records / per_step))
    return max(1, math.ceil(steps_per_epoch * (training.epochs or 1)))


def loader_workers(*, cuda: bool) -> int:
    """Data-loader workers per process: none on CPU; on a GPU up to 4, from this process's share of
    the pod's CPUs (its cgroup limit, not the node's count), one CPU left to the training loop."""
    return min(4, cpus.cpus_per_process() - 1) if cuda else 0


def wrapped_layers(model: Any) -> list[str]:
    """The transformer-block classes FSDP shards one by one: the model's `_no_split_modules` found in it.

    A class a model family lists but this checkpoint does not use is left out (accelerate refuses
    names it cannot find); a PEFT model is looked through to its base model.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    present = {type(module).__name__ for module in base.modules()}
    return sorted(name for name in getattr(base, "_no_split_modules", None) or () if name in present)


def fsdp_config(model: Any, *, training: api_spec.TrainingSpec) -> dict[str, Any]:
    """`TrainingArguments.fsdp_config` for full sharding of a PEFT model (FSDP2).

    FSDP2 keeps every parameter as its own (sharded) tensor, so frozen base weights and trainable
    adapter weights share a unit, as FSDP1's `use_orig_params` did; `cpu_ram_efficient_loading`
    is its `sync_module_states`: one process per node loads the weights, the others get rank 0's
    by broadcast at wrapping. Checkpoints hold full (gathered) state dicts of the adapter and the
    optimizer, written by rank 0: small for an adapter, and any world size can resume them.
    Activation checkpointing is FSDP's own when `gradientCheckpointing` is on.
    """
    layers = wrapped_layers(model)
    if not layers:
        log.warning("%s names no transformer blocks (_no_split_modules): FSDP shards it as one unit", type(model))
    return {
        "version": 2,
        "reshard_after_forward": True,
        "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
        "transformer_layer_cls_to_wrap": layers,
        "cpu_ram_efficient_loading": True,
        "state_dict_type": "FULL_STATE_DICT",
        "activation_checkpointing": training.gradient_checkpointing,
    }


def build(
    training: api_spec.TrainingSpec,
    *,
    output_dir: pathlib.Path,
    has_validation: bool,
    label_names: list[str],
    fsdp: dict[str, Any] | None = None,
) -> transformers.TrainingArguments:
    """The Trainer's arguments; `fsdp` (from :func:`fsdp_config`) shards the model, else DDP or one process."""
    cuda = torch.cuda.is_available()
    mixed = precision(training.precision)
    evaluation = training.evaluation
    eval_strategy = evaluation.strategy if has_validation else "no"
    workers = loader_workers(cuda=cuda)
    kwargs: dict[str, Any] = {}
    if training.max_steps is not None:
        kwargs["max_steps"] = training.max_steps
    else:
        kwargs["num_train_epochs"] = training.epochs
    if eval_strategy == "steps":
        kwargs["eval_steps"] = evaluation.steps
    # transformers 5 renamed gradient checkpointing to activation checkpointing.
    name = (
        "activation_checkpointing"
        if hasattr(transformers.TrainingArguments, "activation_checkpointing")
        else ("gradient_checkpointing")
    )
    # Under FSDP its own activation checkpointing (in `fsdp`) replaces the Trainer's, which would
    # all-gather every layer a second time in the backward pass.
    kwargs[name] = training.gradient_checkpointing and fsdp is None
    if kwargs[name]:
        kwargs[f"{name}_kwargs"] = {"use_reentrant": False}
    if fsdp is not None:
        kwargs.update(fsdp=True, fsdp_config=dict(fsdp))
    return transformers.TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=training.batch_size,
        per_device_eval_batch_size=training.batch_size,
        gradient_accumulation_steps=training.gradient_accumulation_steps,
        learning_rate=training.learning_rate,
        lr_scheduler_type=training.lr_scheduler,
        warmup_steps=training.warmup_ratio,
        weight_decay=training.weight_decay,
        max_grad_norm=training.max_grad_norm,
        seed=training.seed,
        data_seed=training.seed,
        bf16=mixed == "bf16",
        fp16=mixed == "fp16",
        use_cpu=not cuda,
        optim="adamw_torch_fused" if cuda else "adamw_torch",
        logging_steps=training.logging_steps,
        logging_nan_inf_filter=False,
        eval_strategy=eval_strategy,
        save_strategy="steps",
        save_steps=training.checkpoint_steps,
        save_total_limit=2,
        report_to="none",
        disable_tqdm=True,
        remove_unused_columns=False,
        label_names=label_names,
        dataloader_num_workers=workers,
        dataloader_pin_memory=cuda,
        dataloader_persistent_workers=workers > 0,
        ddp_find_unused_parameters=False,
        **kwargs,
    )
