"""Two trainer processes on CPU, through the container's launcher: both train, one exports, same losses.

`accelerate launch --multi_gpu --num_processes 2` is how accelerate 1.x starts several local
processes (torchrun; without `--multi_gpu` it starts one, whatever `--num_processes` says). On a
machine without a GPU each rank trains on the CPU and the ranks form a gloo group. Two ranks with
micro-batch b take the same optimizer steps as one process with 2b: the distributed sampler gives
rank r the r-th micro-batch of b out of the same shuffled order, and DDP averages the gradients.
The adapter goes to the local Hub stand-in, which records every commit. A SIGTERM to the
launcher reaches each rank once, and both stop at the same step with one checkpoint.
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
from collections.abc import Callable

import pytest

from kubeft_trainer import config, pipeline
from tests.fixtures.hub import HubStandIn
from tests.integration.trainer.conftest import hub_spec, logged_losses, merge, termination

pytestmark = pytest.mark.slow

REPO = "kubeft-tester/two-ranks"
# The two runs' losses agree this closely (1e-7 measured): the same examples, summed in another
# order (two ranks' partial losses, gloo's all-reduce, one or two threads per process).
LOSS_RTOL = 1e-5


def launch_two(config: pathlib.Path) -> list[str]:
    """The container's launcher, starting two CPU ranks (a free port: tests may run side by side)."""
    command = [sys.executable, "-m", "kubeft_trainer.launch", "--multi_gpu", "--num_processes", "2"]
    return [*command, "--main_process_port", "0", "-m", "kubeft_trainer", "--config", str(config)]


def commits(hub: HubStandIn, repo: str) -> list[str]:
    """The commit requests the stand-in got for `repo`: one per export."""
    return [r.path for r in hub.requests if r.method == "POST" and f"/models/{repo}/commit/" in r.path]


def test_two_cpu_processes_train_as_one_with_the_same_global_batch(
    hub_output: HubStandIn,
    tiny: dict[str, pathlib.Path],
    matrix_data: pathlib.Path,
    write_config: Callable[..., pathlib.Path],
    trainer_env: pathlib.Path,
) -> None:
    hub = hub_output
    spec = merge(hub_spec(hub, model=tiny["causal-lm"], data=matrix_data, repo=REPO), {"training": {"batchSize": 2}})
    done = subprocess.run(launch_two(write_config(spec)), capture_output=True, text=True, timeout=600)
    log = done.stderr
    assert done.returncode == 0, log[-4000:]

    # Both ranks trained every step, as one group of two.
    assert "process 0 of 2: trained to step 3" in log, log[-4000:]
    assert "[rank 1] kubeft_trainer.train: process 1 of 2: trained to step 3" in log, log[-4000:]
    # Rank 0 alone exported, once.
    assert termination(trainer_env)["result"] == "Succeeded"
    assert len(commits(hub, REPO)) == 1, hub.requests
    assert (hub.files(REPO) / "adapter_model.safetensors").exists()
    exported = [line for line in log.splitlines() if "kubeft_trainer.pipeline: done:" in line]
    assert len(exported) == 1 and "[rank" not in exported[0], exported

    # One process, micro-batch 4: the same three steps.
    bigger = {"training": {"batchSize": 4}, "output": {"hub": {"repo": f"{REPO}-single"}}}
    single = config.parse({"spec": merge(spec, bigger)}, environ=os.environ)
    pipeline.run(single)
    two = logged_losses(trainer_env / "work" / "runs" / "0000" / "tensorboard")  # write_config's uid
    one = logged_losses(single.tensorboard_dir)
    assert [step for step, _ in two] == [step for step, _ in one] == [1, 2, 3, 3], (two, one)
    assert [loss for _, loss in two] == pytest.approx([loss for _, loss in one], rel=LOSS_RTOL)


def test_sigterm_stops_both_ranks_at_one_step_with_its_checkpoint(
    hub_output: HubStandIn,
    tiny: dict[str, pathlib.Path],
    matrix_data: pathlib.Path,
    write_config: Callable[..., pathlib.Path],
    trainer_env: pathlib.Path,
) -> None:
    spec = hub_spec(hub_output, model=tiny["causal-lm"], data=matrix_data, repo=REPO)
    spec = merge(spec, {"training": {"maxSteps": 100000, "batchSize": 2}})
    proc = subprocess.Popen(
        launch_two(write_config(spec)), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    seen: list[str] = []
    while not (seen and "kubeft_trainer.train.callbacks: step " in seen[-1]):
        line = proc.stderr.readline()
        assert line, f"the run ended before its first step: {''.join(seen)[-4000:]}"
        seen.append(line)
    proc.send_signal(signal.SIGTERM)
    _, rest = proc.communicate(timeout=300)
    log = "".join(seen) + rest

    assert proc.returncode == 143, log[-4000:]
    message = termination(trainer_env)
    assert message["reason"] == "Preempted", message
    # The launcher passed the signal once to each rank, and each took it for a checkpoint.
    for rank in (0, 1):
        assert log.count(f"passed SIGTERM on to rank {rank} ") == 1, log[-4000:]
    assert log.count("SIGTERM: saving a checkpoint after this micro-batch") == 2, log[-4000:]
    step = message["step"]
    assert f"process 1 of 2: trained to step {step}" in log, log[-4000:]
    checkpoint = trainer_env / "work" / "runs" / "0000" / "checkpoints" / f"checkpoint-{step}"
    assert (checkpoint / "adapter_model.safetensors").exists(), sorted(checkpoint.parent.glob("*"))
    assert commits(hub_output, REPO) == [], "a preempted run exports nothing"
