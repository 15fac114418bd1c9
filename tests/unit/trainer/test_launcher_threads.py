"""The launcher gives each trainer process its share of the pod's CPUs as threads.

accelerate launch sets OMP_NUM_THREADS=1 for the trainer unless told otherwise, so a CPU pod with
four cores trained on one (found by the CPU benchmark: kubeft 1 thread, the quick tour 2).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from kubeft_trainer import launch


@pytest.mark.parametrize(
    ("args", "usable", "want"),
    [
        (["-m", "kubeft_trainer"], 4, ["--num_cpu_threads_per_process", "4"]),
        (["--num_processes", "1", "-m", "kubeft_trainer"], 6, ["--num_cpu_threads_per_process", "6"]),
        (["--multi_gpu", "--num_processes", "4", "-m", "kubeft_trainer"], 16, ["--num_cpu_threads_per_process", "4"]),
        (["--num_processes=2", "-m", "kubeft_trainer"], 2, ["--num_cpu_threads_per_process", "1"]),
        # More processes than CPUs: never zero threads.
        (["--num_processes", "8", "-m", "kubeft_trainer"], 2, ["--num_cpu_threads_per_process", "1"]),
        # The caller chose: nothing added.
        (["--num_cpu_threads_per_process", "3", "-m", "kubeft_trainer"], 8, []),
        (["--num_cpu_threads_per_process=3", "-m", "kubeft_trainer"], 8, []),
    ],
)
def test_each_process_gets_its_share_of_the_pods_cpus(args, usable, want):
    assert launch.thread_args(args, {}, usable=usable) == want


def test_an_explicit_omp_num_threads_is_left_alone():
    assert launch.thread_args(["-m", "kubeft_trainer"], {"OMP_NUM_THREADS": "3"}, usable=8) == []


def test_the_trainer_started_by_accelerate_gets_the_threads(tmp_path):
    """Through the real `accelerate launch`: the trainer process sees OMP_NUM_THREADS = its share."""
    script = tmp_path / "threads.py"
    script.write_text("import os; print('threads', os.environ.get('OMP_NUM_THREADS'))\n")
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env["KUBEFT_WORKDIR"] = str(tmp_path / "work")
    done = subprocess.run(
        [sys.executable, "-m", "kubeft_trainer.launch", "--num_processes", "1", str(script)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    want = launch.thread_args(["--num_processes", "1"], {})[1]
    assert f"threads {want}" in done.stdout, done.stdout + done.stderr[-2000:]
