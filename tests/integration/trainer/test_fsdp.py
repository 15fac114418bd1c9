"""FSDP over two CPU processes, through the container's launcher: same losses as DDP, a loadable
adapter, and a checkpoint that a fresh pod resumes.

`accelerate launch --multi_gpu --num_processes 2` starts two ranks that form a gloo group on a
machine without a GPU (tests/integration/trainer/test_multiprocess.py); `KUBEFT_PARALLELISM`, as
the operator sets it, turns full sharding on (kubeft_trainer/train/arguments.py). FSDP and DDP
see the same micro-batches and take the same optimizer steps; only the order of float sums
differs (all-gathered shards, reduce-scatter instead of all-reduce). Runs write to a bucket of
the loopback S3 server, as a pod would: checkpoints under the run prefix, the adapter beside it.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from kubeft_operator.api import contract
from tests.fixtures.s3 import S3
from tests.integration.trainer.conftest import logged_losses, merge, spec_doc, termination

pytestmark = pytest.mark.slow

# FSDP's losses and a resumed run's agree this closely (bit for bit measured, on 2 CPU ranks): the
# same examples and steps; other hardware or shapes may sum floats in another order.
LOSS_RTOL = 1e-5
# The run's own checkpoint prefix beside the output s3://<bucket>/<out> (write_config's uid is 0000).
CHECKPOINTS = ".kubeft-runs/{out}/0000/checkpoints"


def launch_two(
    config: pathlib.Path, *, parallelism: str, workdir: pathlib.Path, s3: S3
) -> subprocess.CompletedProcess[str]:
    """The container's launcher with two CPU ranks, the operator's parallelism and a work dir of its own."""
    command = [sys.executable, "-m", "kubeft_trainer.launch", "--multi_gpu", "--num_processes", "2"]
    command += ["--main_process_port", "0", "-m", "kubeft_trainer", "--config", str(config)]
    env = {**os.environ, **s3.env(), "KUBEFT_WORKDIR": str(workdir), contract.PARALLELISM_ENV: parallelism}
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)


def small_spec(s3: S3, *, tiny: dict[str, pathlib.Path], data: pathlib.Path, out: str) -> dict[str, Any]:
    """4 steps of 2 records per rank, no dropout (runs that must agree draw no random numbers), no evaluation."""
    spec = spec_doc(s3, model=tiny["causal-lm"], data=data, task="CAUSAL_LM", fields={"text": "text"}, output=out)
    return merge(
        spec,
        {
            "method": {"lora": {"dropout": 0.0}},
            "training": {"maxSteps": 4, "batchSize": 2, "learningRate": 1e-2, "evaluation": {"strategy": "no"}},
            "resources": {"gpus": 0},
        },
    )


def tensorboard_of(workdir: pathlib.Path) -> pathlib.Path:
    return workdir / "runs" / "0000" / "tensorboard"


def test_fsdp_trains_like_ddp_and_exports_an_adapter_peft_loads(
    s3: S3,
    tiny: dict[str, pathlib.Path],
    matrix_data: pathlib.Path,
    write_config: Callable[..., pathlib.Path],
    trainer_env: pathlib.Path,
) -> None:
    import peft
    import transformers

    ddp = launch_two(
        write_config(small_spec(s3, tiny=tiny, data=matrix_data, out="ddp"), name="ddp"),
        parallelism="ddp",
        workdir=trainer_env / "ddp",
        s3=s3,
    )
    assert ddp.returncode == 0, ddp.stderr[-4000:]
    fsdp = launch_two(
        write_config(small_spec(s3, tiny=tiny, data=matrix_data, out="fsdp"), name="fsdp"),
        parallelism="fsdp",
        workdir=trainer_env / "fsdp",
        s3=s3,
    )
    log = fsdp.stderr
    assert fsdp.returncode == 0, log[-4000:]

    assert "FSDP: parameters, gradients and optimizer state fully sharded over 2 processes" in log, log[-4000:]
    assert "[rank 1] kubeft_trainer.train: process 1 of 2: trained to step 4" in log, log[-4000:]
    sharded = logged_losses(tensorboard_of(trainer_env / "fsdp"))
    replicated = logged_losses(tensorboard_of(trainer_env / "ddp"))
    assert [step for step, _ in sharded] == [step for step, _ in replicated] == [1, 2, 3, 4, 4], (sharded, replicated)
    assert [loss for _, loss in sharded] == pytest.approx([loss for _, loss in replicated], rel=LOSS_RTOL)

    # Rank 0 alone exported, once, whole tensors that PEFT loads onto the base model.
    exported = [line for line in log.splitlines() if "kubeft_trainer.pipeline: done:" in line]
    assert len(exported) == 1 and "[rank" not in exported[0], exported
    adapter = trainer_env / "adapter"
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        adapter.mkdir(exist_ok=True)
        (adapter / name).write_bytes(s3.read(f"fsdp/{name}"))
    base = transformers.AutoModelForCausalLM.from_pretrained(tiny["causal-lm"])
    loaded = peft.PeftModel.from_pretrained(base, adapter)
    lora = {name: p for name, p in loaded.named_parameters() if "lora_B" in name}
    assert lora and all(p.abs().sum() > 0 for p in lora.values()), "lora_B starts at zero: trained weights expected"


def test_a_fresh_pod_resumes_an_fsdp_checkpoint_and_continues_the_run(
    s3: S3,
    tiny: dict[str, pathlib.Path],
    matrix_data: pathlib.Path,
    write_config: Callable[..., pathlib.Path],
    trainer_env: pathlib.Path,
) -> None:
    spec = small_spec(s3, tiny=tiny, data=matrix_data, out="resumed")
    spec = merge(spec, {"training": {"checkpointSteps": 2}, "output": {"keepCheckpoints": True}})
    config = write_config(spec, name="resumed")
    first = launch_two(config, parallelism="fsdp", workdir=trainer_env / "pod-1", s3=s3)
    assert first.returncode == 0, first.stderr[-4000:]
    prefix = CHECKPOINTS.format(out="resumed")
    saved = s3.keys(f"{prefix}/checkpoint-2/")
    # What an FSDP checkpoint holds: the gathered adapter (twice: PEFT's file, accelerate's for the
    # resume), the gathered optimizer state, the schedule, the trainer state and rank 0's RNG state.
    names = ("adapter_model.safetensors", "pytorch_model_fsdp.bin", "optimizer.bin", "scheduler.pt", "rng_state_0.pth")
    for name in (*names, "trainer_state.json"):
        assert f"{prefix}/checkpoint-2/{name}" in saved, saved

    # As if the pod had been lost after step 2: its later checkpoint never became complete.
    for key in s3.keys(f"{prefix}/checkpoint-4/"):
        s3.client.delete_object(Bucket=s3.bucket, Key=key)
    second = launch_two(config, parallelism="fsdp", workdir=trainer_env / "pod-2", s3=s3)
    log = second.stderr
    assert second.returncode == 0, log[-4000:]

    assert f"resuming from {s3.uri(prefix)}/checkpoint-2" in log, log[-4000:]
    assert "process 1 of 2: trained to step 4" in log, log[-4000:]
    assert termination(trainer_env)["step"] == 4
    uninterrupted = logged_losses(tensorboard_of(trainer_env / "pod-1"))
    resumed = logged_losses(tensorboard_of(trainer_env / "pod-2"))
    # Steps 3 and 4 again, from the restored adapter, optimizer, schedule and data position.
    assert [step for step, _ in resumed[:2]] == [3, 4], resumed
    assert [loss for _, loss in resumed[:2]] == pytest.approx([loss for _, loss in uninterrupted[2:4]], rel=LOSS_RTOL)
