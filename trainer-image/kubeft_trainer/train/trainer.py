"""The Trainer subclasses the pipeline runs: perplexity next to every eval loss, contrastive loss, FSDP.

Under FSDP (`TrainingArguments.fsdp`, :func:`kubeft_trainer.train.arguments.fsdp_config`) the
Trainer shards on CPU ranks too, and its checkpoints and the final export gather only the
adapter, never the frozen base weights. Used by :func:`kubeft_trainer.train.run`.
"""

from __future__ import annotations

import functools
import logging
import pathlib
from typing import Any

import accelerate
import torch
import transformers
from torch.distributed import tensor as dtensor
from torch.distributed.checkpoint import state_dict

from kubeft_trainer.train import contrastive, metrics

log = logging.getLogger(__name__)

# The files an FSDP checkpoint holds besides PEFT's adapter (transformers' and accelerate's names).
FSDP_MODEL = "pytorch_model_fsdp"
OPTIMIZER = "optimizer.bin"
SCHEDULER = "scheduler.pt"
FULL_STATE_DICT = functools.partial(state_dict.StateDictOptions, full_state_dict=True)


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The trainable tensors of `model` (the adapter), whole and on the CPU, keyed as in its state dict.

    A collective under FSDP (each sharded tensor is all-gathered): every rank calls it, in the same
    order. Frozen base weights are never gathered, so a model too big for one device stays sharded.
    """
    trainable = {name for name, param in model.named_parameters() if param.requires_grad}
    state = {}
    for name, value in sorted(model.state_dict(keep_vars=True).items()):
        if name in trainable:
            full = value.full_tensor() if isinstance(value, dtensor.DTensor) else value
            state[name] = full.detach().cpu()
    return state


def gather_adapter(model: torch.nn.Module) -> None:
    """After FSDP training: put each trainable tensor back whole in the module that owns it.

    Every rank calls it; then rank 0's `save_pretrained` (the export) writes whole tensors. The
    base weights stay sharded: the model is for saving now, not for another forward pass.
    """
    for name, value in trainable_state(model).items():
        owner, _, attribute = name.rpartition(".")
        setattr(model.get_submodule(owner), attribute, torch.nn.Parameter(value, requires_grad=False))


class Trainer(transformers.Trainer):
    """transformers.Trainer that adds `eval_perplexity` wherever an `eval_loss` is logged, and shards on CPU."""

    def __init__(self, *args: Any, perplexity: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.perplexity = perplexity

    def create_accelerator_and_postprocess(self) -> None:
        super().create_accelerator_and_postprocess()
        state = self.accelerator.state
        if self.args.fsdp_plugin_args is not None and state.distributed_type == accelerate.DistributedType.MULTI_CPU:
            # accelerate turns FSDP on for accelerator ranks only (AcceleratorState) and silently keeps
            # DDP on CPU ranks, where torch's FSDP2 shards just as well over gloo: CI runs it so.
            state.distributed_type = accelerate.DistributedType.FSDP
            state.fsdp_plugin = accelerate.utils.FullyShardedDataParallelPlugin(**self.args.fsdp_plugin_args)
            self.is_fsdp_enabled = True
        if self.is_fsdp_enabled:
            log.info(
                "FSDP: parameters, gradients and optimizer state fully sharded over %d processes", state.num_processes
            )

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        if not self.is_fsdp_enabled:
            super().save_model(output_dir, _internal_call)
            return
        # transformers gathers the whole model (base weights too) onto rank 0 for this; the adapter is enough.
        model: Any = self.model
        state = trainable_state(model)
        if self.args.should_save:
            model.save_pretrained(str(output_dir or self.args.output_dir), state_dict=state)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        if not self.is_fsdp_enabled:
            super()._load_from_checkpoint(resume_from_checkpoint, model)
            return
        # accelerate reads the adapter on rank 0 only and broadcasts it, and with an adapter-only state
        # dict its ranks then disagree on the keys and wait for each other forever (accelerate 1.15,
        # torch 2.15). Every node has the checkpoint (the pipeline downloads it once per node), so
        # every rank reads the whole adapter and keeps its own shard of it.
        target: Any = model if model is not None else self.model
        state = torch.load(pathlib.Path(resume_from_checkpoint, f"{FSDP_MODEL}.bin"), weights_only=True)
        state_dict.set_model_state_dict(target, state, options=FULL_STATE_DICT(strict=False))

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        if not self.is_fsdp_enabled or checkpoint is None:
            super()._load_optimizer_and_scheduler(checkpoint)
            return
        # As _load_from_checkpoint: each rank reads the whole optimizer state and keeps its shard.
        model: Any = self.model
        optimizer: Any = self.optimizer
        schedule: Any = self.lr_scheduler
        state = torch.load(pathlib.Path(checkpoint, OPTIMIZER), weights_only=True)
        state_dict.set_optimizer_state_dict(model, optimizer, state, options=FULL_STATE_DICT())
        schedule.load_state_dict(torch.load(pathlib.Path(checkpoint, SCHEDULER), weights_only=True))

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if self.perplexity and "eval_loss" in logs:
            # In place: evaluate() returns this same dict.
            logs["eval_perplexity"] = metrics.perplexity(logs["eval_loss"])
        super().log(logs, start_time)


class ContrastiveTrainer(Trainer):
    """FEATURE_EXTRACTION: in-batch-negatives contrastive loss over mean-pooled (text, pair) embeddings."""

    def compute_loss(
        self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        loss = contrastive.contrastive_loss(
            contrastive.embed(model, inputs), contrastive.embed(model, inputs, prefix="pair_")
        )
        return (loss, {}) if return_outputs else loss

    def prediction_step(
        self, model: Any, inputs: dict[str, Any], prediction_loss_only: bool, ignore_keys: Any = None
    ) -> tuple[torch.Tensor, None, None]:
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None
