"""The container entry point keeps the trainer's exit code through `accelerate launch`, which turns it into 1."""

from __future__ import annotations

import pathlib
import subprocess
import sys

from tests.integration.trainer.conftest import termination


def test_user_error_exit_code_survives_accelerate_launch(trainer_env: pathlib.Path) -> None:
    bad = trainer_env / "config.yaml"
    bad.write_text("kind: TrainerConfig\nspec: {}\n")
    command = [sys.executable, "-m", "kubeft_trainer.launch", "--num_processes", "1"]
    command += ["-m", "kubeft_trainer", "--config", str(bad)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 64, result.stderr[-3000:]
    assert termination(trainer_env)["reason"] == "InvalidConfig"
