"""Stage 4: train the PEFT model with transformers' Trainer (through accelerate), CPU or GPU.

:func:`run` wires the callbacks (progress, TensorBoard streamed to S3, divergence guard, durable
checkpoints, SIGTERM, AdaLoRA), resumes from the newest complete checkpoint, trains, runs a final
evaluation, and returns the metrics. Called by :mod:`kubeft_trainer.pipeline`.
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
from typing import Any

import transformers

from kubeft_trainer import config as trainer_config
from kubeft_trainer import data as data_stage
from kubeft_trainer import errors, progress, storage
from kubeft_trainer.train import arguments, callbacks, checkpoints, divergence, metrics, preemption, tensorboard
from kubeft_trainer.train import trainer as trainers

log = logging.getLogger(__name__)

LABEL_NAMES = {"QUESTION_ANS": ["start_positions", "end_positions"], "FEATURE_EXTRACTION": []}


@dataclasses.dataclass(frozen=True)
class Outcome:
    step: int
    total_steps: int
    metrics: dict[str, float]
    resumed_from: int | None


def identity(cfg: trainer_config.TrainerConfig) -> checkpoints.Identity:
    return checkpoints.Identity(uid=cfg.run_id, spec_hash=cfg.spec_hash)


def find_resume(cfg: trainer_config.TrainerConfig, remote: checkpoints.Remote | None) -> pathlib.Path | None:
    """This run's newest complete checkpoint (from S3 when there is an S3 output, else local), or None."""
    if remote is not None:
        step = remote.latest()
        if step is not None:
            path = remote.download(step, cfg.checkpoint_dir)
            log.info("resuming from %s/checkpoint-%d (this run's own checkpoint)", remote.root, step)
            return path
        log.info("no checkpoint of this run (%s) under %s: training from step 0", cfg.run_id, remote.root)
        return None
    local = checkpoints.latest_local(cfg.checkpoint_dir, identity(cfg))
    if local is not None:
        log.info("resuming from %s (this run's own checkpoint)", local)
    else:
        log.info("no checkpoint of this run (%s): training from step 0", cfg.run_id)
    return local


def run(
    cfg: trainer_config.TrainerConfig,
    model: Any,
    prepared: data_stage.Prepared,
    *,
    reporter: progress.Reporter,
    flag: preemption.Preemption,
    s3: Any,
    remote: checkpoints.Remote | None,
    resume_from: pathlib.Path | None,
) -> Outcome:
    spec = cfg.spec
    training = spec.training
    args = arguments.build(
        training,
        output_dir=cfg.checkpoint_dir,
        has_validation=prepared.validation is not None,
        label_names=LABEL_NAMES.get(spec.task, ["labels"]),
        fsdp=arguments.fsdp_config(model, training=training) if cfg.parallelism == "fsdp" else None,
    )
    wanted = metrics.wanted(spec.task, training.evaluation.metrics)
    compute = metrics.compute_metrics_for(wanted)
    progress_cb = callbacks.Progress(reporter)
    guard = divergence.Guard(
        max_loss_factor=training.divergence.max_loss_factor, patience_steps=training.divergence.patience_steps
    )
    guard_cb = callbacks.DivergenceStop(guard)
    stop_cb = callbacks.StopOnPreemption(flag)
    writer = _summary_writer(cfg) if cfg.is_main_process else None
    saver = callbacks.Checkpoints(
        remote, progress_cb, identity=identity(cfg), guard=guard if training.divergence.enabled else None
    )
    cbs: list[transformers.TrainerCallback] = [progress_cb, saver, stop_cb]
    if writer is not None:
        cbs.append(callbacks.TensorBoard(writer))
    if training.divergence.enabled:
        cbs.append(guard_cb)
    if spec.method.type == "adalora":
        cbs.append(callbacks.AdaLoraBudget(model))
    trainer_class = trainers.ContrastiveTrainer if spec.task == "FEATURE_EXTRACTION" else trainers.Trainer
    trainer = trainer_class(
        model=model,
        args=args,
        train_dataset=prepared.train,
        eval_dataset=prepared.validation,
        data_collator=prepared.collator,
        compute_metrics=compute,
        preprocess_logits_for_metrics=metrics.argmax_logits if compute else None,
        callbacks=cbs,
        perplexity="perplexity" in wanted,
    )
    trainer.remove_callback(transformers.PrinterCallback)
    sync = _start_sync(cfg, s3, writer) if writer is not None else None
    resumed = checkpoints.step_of(resume_from.name) if resume_from else None
    try:
        result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
        state = trainer.state
        # Every rank says so: the only line in a non-main rank's log that shows it took part.
        log.info("process %d of %d: trained to step %d", args.process_index, args.world_size, state.global_step)
        if guard_cb.message:
            raise errors.Diverged(guard_cb.message, step=guard_cb.step)
        if stop_cb.step is not None:
            # All ranks stopped at this step (StopOnPreemption agrees over the group). None exits before
            # rank 0 has saved and uploaded the checkpoint: once one rank exits non-zero, torchrun
            # stops the others with SIGTERM, then SIGKILL 30 seconds later.
            trainer.accelerator.wait_for_everyone()
            if stop_cb.by_peer and not flag.requested:
                raise errors.PeerStopped(
                    f"another pod of the group got SIGTERM; the group saved step {stop_cb.step} and restarts from it",
                    step=stop_cb.step,
                )
            raise errors.Preempted(
                f"SIGTERM at step {stop_cb.step}; checkpoint saved, the retry resumes from it", step=stop_cb.step
            )
        final = dict(progress_cb.metrics)
        final["train_loss"] = float(result.training_loss)
        final.update(
            {k: float(v) for k, v in result.metrics.items() if k in ("train_runtime", "train_samples_per_second")}
        )
        if prepared.validation is not None and args.eval_strategy != "no":
            final.update(_final_eval(trainer))
        final.pop("loss", None)
        if trainer.is_fsdp_enabled:
            # FSDP2 wrapped `model` in place: the pipeline exports this same object.
            trainers.gather_adapter(model)
        return Outcome(step=state.global_step, total_steps=state.max_steps, metrics=final, resumed_from=resumed)
    finally:
        if writer is not None:
            writer.close()
        if sync is not None:
            sync.stop()


def _final_eval(trainer: transformers.Trainer) -> dict[str, float]:
    """The last evaluation's metrics; evaluates now unless the last step was just evaluated."""
    history = trainer.state.log_history
    evals = [h for h in history if "eval_loss" in h]
    latest = evals[-1] if evals and evals[-1].get("step") == trainer.state.global_step else trainer.evaluate()
    return {
        k: float(v)
        for k, v in latest.items()
        if k.startswith("eval_") and isinstance(v, int | float) and not k.endswith(("_runtime", "_per_second"))
    }


def _summary_writer(cfg: trainer_config.TrainerConfig) -> Any:
    from torch.utils import tensorboard as torch_tensorboard

    interval = cfg.spec.tensorboard.flush_interval_seconds if cfg.spec.tensorboard else 30
    cfg.tensorboard_dir.mkdir(parents=True, exist_ok=True)
    return torch_tensorboard.SummaryWriter(log_dir=str(cfg.tensorboard_dir), flush_secs=max(1, interval))


def _start_sync(cfg: trainer_config.TrainerConfig, s3: Any, writer: Any) -> tensorboard.Sync | None:
    uri = cfg.tensorboard_uri
    if uri is None or s3 is None:
        return None
    interval = cfg.spec.tensorboard.flush_interval_seconds if cfg.spec.tensorboard else 30
    remote = storage.S3Uri.parse(uri)
    log.info("streaming TensorBoard logs to %s every %ds", remote, interval)
    return tensorboard.Sync(s3, cfg.tensorboard_dir, remote, interval=interval, writer=writer).start()
