"""Publish the dataset preflight report, then stop the run if it failed a threshold.

:func:`publish` writes the report (:mod:`kubeft_trainer.data.preflight`) where a user finds it
whether the run goes on or not: the full JSON in the run's directory and, with an S3 output,
at ``<run prefix>/dataset-report.json`` (beside the checkpoints, not in the adapter's prefix, which
holds the adapter only); a Markdown text and a token-length histogram in the run's TensorBoard
logs (uploaded at once); and the short form in ``status.dataset``. :func:`enforce` raises
:class:`~kubeft_trainer.errors.DatasetPreflightFailed` on a failed report. Called by
:mod:`kubeft_trainer.pipeline` between the data stage and loading the model; only the main
process publishes, every process enforces.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

from kubeft_trainer import config as trainer_config
from kubeft_trainer import errors, progress, storage
from kubeft_trainer.data import preflight
from kubeft_trainer.train import tensorboard

log = logging.getLogger(__name__)
TEXT_TAG = "dataset/preflight"
CHAT_SAMPLE_TAG = "dataset/chat_sample"
HISTOGRAM_TAG = "dataset/token_lengths"


# The preflight's own event file, written once before training, ends with this.
EVENTS_SUFFIX = ".dataset"


def publish(
    cfg: trainer_config.TrainerConfig, report: preflight.Report, *, reporter: progress.Reporter, s3: Any
) -> preflight.Report:
    """Write the report everywhere it belongs; returns it with `report_uri` set."""
    uri = cfg.dataset_report_uri if s3 is not None else None
    report = dataclasses.replace(report, report_uri=uri or str(cfg.dataset_report_path))
    body = json.dumps(report.wire(), indent=2).encode()
    cfg.dataset_report_path.parent.mkdir(parents=True, exist_ok=True)
    cfg.dataset_report_path.write_bytes(body)
    if uri is not None:
        try:
            storage.retrying(
                f"the dataset report upload to {uri}",
                lambda: storage.upload_bytes(s3, body, storage.S3Uri.parse(uri)),
                budget=30.0,
            )
        except Exception as exc:
            # The report is a diagnostic: its loss must not fail a run that could train.
            log.warning("could not upload the dataset report to %s: %s", uri, storage.describe(exc))
    _tensorboard(cfg, report, s3=s3)
    reporter.report(dataset=report.summary().wire(), force=True)
    _log(report)
    return report


def enforce(report: preflight.Report) -> None:
    if report.failure:
        where = f"; full report: {report.report_uri}" if report.report_uri else ""
        raise errors.DatasetPreflightFailed(f"dataset preflight failed: {report.failure}{where}")


def _log(report: preflight.Report) -> None:
    lengths = report.train.token_lengths()
    log.info(
        "dataset preflight %s: %d records read, %d used, dropped %s; tokens median %d, p95 %d, max %d; "
        "%d (%.1f%%) truncated at %d",
        report.result,
        report.train.read,
        report.train.used,
        report.train.dropped or "none",
        lengths.p50,
        lengths.p95,
        lengths.max,
        lengths.truncated,
        100 * lengths.truncated_fraction,
        lengths.max_length,
    )
    for warning in report.warnings:
        log.warning("dataset preflight: %s", warning)


def _tensorboard(cfg: trainer_config.TrainerConfig, report: preflight.Report, *, s3: Any) -> None:
    """The report as TensorBoard text and histogram at step 0, uploaded now: a failed run never syncs later."""
    from torch.utils import tensorboard as torch_tensorboard

    cfg.tensorboard_dir.mkdir(parents=True, exist_ok=True)
    writer = torch_tensorboard.SummaryWriter(log_dir=str(cfg.tensorboard_dir), filename_suffix=EVENTS_SUFFIX)
    try:
        writer.add_text(TEXT_TAG, preflight.markdown(report), 0)
        if report.chat_sample is not None:
            writer.add_text(CHAT_SAMPLE_TAG, "```\n" + report.chat_sample + "\n```", 0)
        lengths = report.train.lengths
        if lengths:
            buckets = report.train.histogram()
            top = max(max(lengths), preflight.BUCKETS[-1] + 1)
            writer.add_histogram_raw(
                HISTOGRAM_TAG,
                min=min(lengths),
                max=max(lengths),
                num=len(lengths),
                sum=sum(lengths),
                sum_squares=sum(n * n for n in lengths),
                bucket_limits=[float(bound if bound is not None else top) for bound, _ in buckets],
                bucket_counts=[count for _, count in buckets],
                global_step=0,
            )
    finally:
        writer.close()
    uri = cfg.tensorboard_uri
    if uri is None or s3 is None:
        return
    try:
        tensorboard.Sync(s3, cfg.tensorboard_dir, storage.S3Uri.parse(uri), interval=3600).sync()
    except Exception as exc:
        log.warning("could not upload the dataset preflight's TensorBoard logs to %s: %s", uri, exc)
