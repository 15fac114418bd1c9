"""The trainer's short pipeline: config → data → model → train → export.

:func:`run` is what `kubeft-train` executes after parsing arguments, and what the tests call
in-process; it returns the trained model next to the exported artifact. Errors propagate as
:class:`~kubeft_trainer.errors.TrainerError` for :mod:`kubeft_trainer.__main__` to report.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from typing import Any

import accelerate
import datasets
import torch
import transformers

from kubeft_operator.api import status as api_status
from kubeft_trainer import config as trainer_config
from kubeft_trainer import data, dataset_report, devices, errors, export, progress, storage
from kubeft_trainer import model as model_stage
from kubeft_trainer import train as train_stage
from kubeft_trainer.export import hub
from kubeft_trainer.export import s3 as export_s3
from kubeft_trainer.model import base, warm_start
from kubeft_trainer.train import arguments, checkpoints, preemption

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Result:
    model: Any
    tokenizer: Any
    outcome: train_stage.Outcome
    artifact: api_status.Artifact | None
    labels: list[str] | None
    # The promotion gate's decision (termination message form), with spec.promotion.
    promotion: dict[str, Any] | None = None
    # Why the GPUs asked for were not usable, when KUBEFT_ALLOW_CPU_FALLBACK let the run go on anyway.
    gpu_fallback: str | None = None


def quiet_libraries() -> None:
    """Log lines, not progress bars: pod logs are read by people and log collectors."""
    datasets.disable_progress_bars()
    # Both ship without annotations in transformers.
    transformers.utils.logging.set_verbosity_warning()  # type: ignore[no-untyped-call]
    transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]


def uses_s3(cfg: trainer_config.TrainerConfig) -> bool:
    spec = cfg.spec
    sources = (spec.model.source, spec.dataset.source, spec.dataset.validation_source or "")
    return cfg.output_s3_uri is not None or cfg.tensorboard_uri is not None or any(map(storage.is_s3, sources))


def preflight_outputs(cfg: trainer_config.TrainerConfig, s3: Any) -> None:
    """Write access to every output, checked before any download (seconds, not hours, to a clear error)."""
    if cfg.output_s3_uri is not None and cfg.run_uri is not None:
        export_s3.preflight(s3, cfg.output_s3_uri, cfg.run_uri)
    if cfg.spec.output.hub is not None:
        hub.preflight(cfg.spec.output.hub)


def clean_up(cfg: trainer_config.TrainerConfig, remote: checkpoints.Remote | None) -> None:
    """After a successful export: delete this run's checkpoints, unless spec.output.keepCheckpoints."""
    if cfg.spec.output.keep_checkpoints:
        log.info("keeping the checkpoints of this run (spec.output.keepCheckpoints)")
        return
    if remote is not None:
        try:
            deleted = remote.delete_all()
        except Exception as exc:
            # The adapter is safe; leftover checkpoints cost storage, not correctness.
            log.warning("could not delete the checkpoints under %s: %s", remote.root, exc)
            return
        log.info("deleted this run's checkpoints under %s (%d objects)", remote.root, deleted)
    shutil.rmtree(cfg.checkpoint_dir, ignore_errors=True)


def run(
    cfg: trainer_config.TrainerConfig,
    *,
    flag: preemption.Preemption | None = None,
    reporter: progress.Reporter | None = None,
) -> Result:
    spec = cfg.spec
    flag = flag or preemption.Preemption()
    reporter = reporter or progress.Reporter(name=cfg.name, namespace=cfg.namespace)
    if not cfg.is_main_process:
        reporter.enabled = False
    reporter.start()
    try:
        # First of all, before any download: GPUs asked for but unusable fail here, in seconds.
        gpu_fallback = devices.start(spec.resources.gpus)
        # The ranks' process group, before the first `main_process_first` below. accelerate's default
        # state forms none for CPU ranks (`accelerate launch --multi_gpu` on a machine without a GPU),
        # so every rank would download and resume at once; the training arguments form the group
        # only later. They train on the CPU exactly when there is no GPU; so does this.
        accelerate.PartialState(cpu=not torch.cuda.is_available())
        quiet_libraries()
        try:
            cfg.workdir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise errors.InvalidConfig(
                f"cannot create the work directory {cfg.workdir} ({exc.strerror}); "
                "set KUBEFT_WORKDIR to a writable path"
            ) from exc
        transformers.set_seed(spec.training.seed)
        arguments.precision(spec.training.precision)
        model_stage.check_runtime(cfg)
        s3 = storage.client(spec.storage) if uses_s3(cfg) else None
        if cfg.is_main_process:
            preflight_outputs(cfg, s3)

        # One process per node downloads the s3:// model and the dataset; the others wait for it, then
        # find the unchanged copies in the node's cache instead of each fetching their own.
        with accelerate.PartialState().local_main_process_first():
            location = base.resolve(cfg)
            data.fetch(cfg)
        tokenizer = base.load_tokenizer(spec.model, location)
        prepared = data.prepare(cfg, tokenizer, flash_attention=base.preferred_attention() == "flash_attention_2")
        if prepared.report is not None:
            # Before the model is loaded: bad data fails in seconds, not after the weights are in memory.
            report = prepared.report
            if cfg.is_main_process:
                report = dataset_report.publish(cfg, report, reporter=reporter, s3=s3)
            dataset_report.enforce(report)
        total_steps = arguments.planned_steps(spec.training, records=len(prepared.train))

        # Same initial adapter weights whatever the data stage consumed from the RNG.
        transformers.set_seed(spec.training.seed)
        model = model_stage.build(cfg, location, tokenizer=tokenizer, labels=prepared.labels, total_steps=total_steps)

        remote = (
            checkpoints.Remote(s3, cfg.checkpoints_uri, train_stage.identity(cfg))
            if cfg.checkpoints_uri is not None
            else None
        )
        # Every rank reads the checkpoint's files (trainer state, schedule, its RNG state), and nodes do not
        # share a disk: each node's first process downloads it, the node's others then find the files in place.
        with accelerate.PartialState().local_main_process_first():
            resume_from = train_stage.find_resume(cfg, remote)
        if resume_from is None and cfg.resume_from is not None:
            # A warm start from another run's weights; a retry of this run resumes its own checkpoint instead.
            with accelerate.PartialState().local_main_process_first():
                source = warm_start.fetch(cfg, s3)
            warm_start.load(model, source, uri=cfg.resume_from)
        outcome = train_stage.run(
            cfg, model, prepared, reporter=reporter, flag=flag, s3=s3, remote=remote, resume_from=resume_from
        )
        reporter.report(metrics=outcome.metrics, force=True)
        artifact = None
        gate = None
        if cfg.is_main_process:
            exported = export.export(
                cfg, model, metrics=outcome.metrics, labels=prepared.labels, step=outcome.step, s3_client=s3
            )
            artifact, gate = exported.artifact, exported.promotion
            log.info("done: %s (%d bytes, manifest sha256 %s)", artifact.uri, artifact.size_bytes, artifact.sha256)
            if s3 is not None:
                log.info("object storage: %s", storage.STATS.summary())
            clean_up(cfg, remote)
        return Result(
            model=model,
            tokenizer=tokenizer,
            outcome=outcome,
            artifact=artifact,
            labels=prepared.labels,
            promotion=gate,
            gpu_fallback=gpu_fallback,
        )
    finally:
        reporter.close()
