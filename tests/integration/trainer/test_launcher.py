"""The container entry point keeps the trainer's exit codes through `accelerate launch` and delivers SIGTERM.

`accelerate launch` alone turns every failing exit code into 1 and does not pass SIGTERM on.
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
from collections.abc import Callable

from tests.fixtures.s3 import S3
from tests.integration.trainer.conftest import merge, spec_doc, termination


def launch_command(config: pathlib.Path) -> list[str]:
    """The trainer as the Job's container runs it: the launcher around `accelerate launch`."""
    return [
        sys.executable,
        "-m",
        "kubeft_trainer.launch",
        "--num_processes",
        "1",
        "-m",
        "kubeft_trainer",
        "--config",
        str(config),
    ]


def test_user_error_exit_code_survives_accelerate_launch(trainer_env: pathlib.Path) -> None:
    bad = trainer_env / "config.yaml"
    bad.write_text("kind: TrainerConfig\nspec: {}\n")
    result = subprocess.run(launch_command(bad), capture_output=True, text=True, timeout=300)
    assert result.returncode == 64, result.stderr[-3000:]
    assert termination(trainer_env)["reason"] == "InvalidConfig"


def test_sigterm_during_startup_still_reaches_the_trainer(
    s3: S3,
    tiny: dict[str, pathlib.Path],
    matrix_data: pathlib.Path,
    write_config: Callable[..., pathlib.Path],
    trainer_env: pathlib.Path,
) -> None:
    spec = spec_doc(s3, model=tiny["causal-lm"], data=matrix_data, task="CAUSAL_LM", fields={"text": "text"})
    spec = merge(spec, {"training": {"maxSteps": 100000}})
    proc = subprocess.Popen(
        launch_command(write_config(spec)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, **s3.env()},
    )
    assert proc.stderr is not None
    # Signal as soon as the launcher says it started accelerate, long before the trainer installs
    # its handler. (Its log line, not /proc: this test's pids need not be the ones /proc shows.)
    seen = []
    while not (seen and seen[-1].startswith("kubeft launch: started accelerate")):
        line = proc.stderr.readline().decode()
        assert line, f"the launcher exited without starting accelerate: {''.join(seen)[-3000:]}"
        seen.append(line)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, err.decode()[-3000:]
    assert termination(trainer_env)["reason"] == "Preempted"
