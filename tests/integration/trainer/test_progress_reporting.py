"""While it trains, the pipeline reports progress, checkpoints and metrics in the FineTuneJob status shape."""

from __future__ import annotations

import os
import pathlib
from typing import Any

from kubeft_operator.api import status as api_status
from kubeft_trainer import config, pipeline, progress
from tests.fixtures.s3 import S3
from tests.integration.trainer.conftest import merge, spec_doc


class RecordingReporter(progress.Reporter):
    """The real reporter (threading, rate limiting, merging) with the HTTP call replaced by a list."""

    def __init__(self) -> None:
        env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBEFT_PROGRESS_INTERVAL": "0"}
        super().__init__(name="job", namespace="ns", environ=env)
        self.bodies: list[dict[str, Any]] = []

    def patch(self, body: dict[str, Any]) -> None:
        self.bodies.append(body)


def test_status_gets_progress_checkpoints_and_final_metrics(
    s3: S3, tiny: dict[str, pathlib.Path], matrix_data: pathlib.Path
) -> None:
    spec = spec_doc(s3, model=tiny["causal-lm"], data=matrix_data, task="CAUSAL_LM", fields={"text": "text"})
    spec = merge(spec, {"dataset": {"validationFraction": 0.25}, "training": {"maxSteps": 6, "checkpointSteps": 3}})
    reporter = RecordingReporter()

    pipeline.run(config.parse({"spec": spec}, environ=os.environ), reporter=reporter)

    statuses = [api_status.FineTuneJobStatus.model_validate(body["status"]) for body in reporter.bodies]
    steps = [s.progress.step for s in statuses if s.progress is not None]
    assert steps == sorted(steps)
    assert steps[-1] == 6
    last = next(s.progress for s in reversed(statuses) if s.progress is not None)
    assert last.total_steps == 6
    assert last.summary == "6/6 (100%)"
    assert last.last_checkpoint_step == 6
    assert statuses[-1].metrics is not None
    assert {"train_loss", "eval_loss", "eval_perplexity"} <= set(statuses[-1].metrics)
