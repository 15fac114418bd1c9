"""`transformers.TrainingArguments` from `spec.training` and the hardware found at run time.

Defaults chosen for speed: no gradient checkpointing unless asked, bf16 where the GPU has it,
fused AdamW on CUDA, pinned memory and data-loader workers on GPU machines (none on CPU, where
worker start-up costs more than the already-tokenized batches save), no tqdm. Called by
:func:`kubeft_trainer.train.run`.
"""

from __future__ import annotations

import math
import pathlib
from typing import Any

import torch
import transformers

from kubeft_operator.api import spec as api_spec
from kubeft_trainer import cpus, devices, errors


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


def build(
    training: api_spec.TrainingSpec,
    *,
    output_dir: pathlib.Path,
    has_validation: bool,
    label_names: list[str],
) -> transformers.TrainingArguments:
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
    kwargs[name] = training.gradient_checkpointing
    if training.gradient_checkpointing:
        kwargs[f"{name}_kwargs"] = {"use_reentrant": False}
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
