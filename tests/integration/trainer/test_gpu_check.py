"""A pod that asked for a GPU it cannot use fails at once with exit 66, before anything else.

The trainer runs as the Job's container runs it (the launcher around `accelerate launch`), with
CUDA_VISIBLE_DEVICES empty so that no GPU is visible on any machine. The spec would also fail its
next check (fp16 needs a GPU: InvalidConfig, exit 64), and its model and S3 endpoint lead nowhere:
exit 66 proves the GPU check came first and nothing was fetched.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from collections.abc import Callable

from tests.integration.trainer.conftest import termination

SPEC = {
    "model": {"source": "/nonexistent/model"},
    "dataset": {"source": "/nonexistent/train.jsonl", "fields": {"text": "text"}},
    "task": "CAUSAL_LM",
    "method": {"type": "lora"},
    "training": {"maxSteps": 1, "precision": "fp16"},
    # A port nothing listens on: reaching it would be a different failure, after retries.
    "storage": {"endpoint": "http://127.0.0.1:9"},
    "output": {"s3": {"uri": "s3://bucket/adapter"}},
    "resources": {"gpus": 1},
}


def no_gpu_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "KUBEFT_ALLOW_CPU_FALLBACK"}
    return {**env, "CUDA_VISIBLE_DEVICES": "", **extra}


def test_no_usable_gpu_is_exit_66_through_the_launcher_with_what_was_seen(
    write_config: Callable[..., pathlib.Path], trainer_env: pathlib.Path
) -> None:
    command = [sys.executable, "-m", "kubeft_trainer.launch", "--num_processes", "1", "-m", "kubeft_trainer"]
    result = subprocess.run(
        [*command, "--config", str(write_config(SPEC))],
        env=no_gpu_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 66, result.stderr[-3000:]
    report = termination(trainer_env)
    assert report["result"] == "Failed" and report["reason"] == "GPUUnavailable"
    for fact in ("spec.resources.gpus is 1", "NVIDIA driver", "torch built for CUDA", "CUDA_VISIBLE_DEVICES="):
        assert fact in report["message"], report["message"]
    assert not (trainer_env / "hf-home" / "kubeft").exists()


def test_the_opt_out_goes_on_past_the_check_with_a_warning(
    write_config: Callable[..., pathlib.Path], trainer_env: pathlib.Path
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kubeft_trainer", "--config", str(write_config(SPEC))],
        env=no_gpu_env(KUBEFT_ALLOW_CPU_FALLBACK="1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 64, result.stderr[-3000:]
    assert termination(trainer_env)["reason"] == "InvalidConfig"
    assert "GPU CHECK FAILED, GOING ON ANYWAY (KUBEFT_ALLOW_CPU_FALLBACK=1)" in result.stderr
