"""The trainer's devices: the start-up GPU check, each rank on its own GPU, bf16 only in hardware, and
CPU counts from the pod's cgroup rather than the node.

No GPU is needed: torch's CUDA functions are replaced with what a GPU node (or a broken one) would
answer, and the cgroup files are written under a temporary root.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import stat
import types
from typing import Any

import pytest
import torch

from kubeft_operator.api import contract
from kubeft_operator.api import spec as api_spec
from kubeft_trainer import cpus, data, devices, errors
from kubeft_trainer.model import base
from kubeft_trainer.train import arguments

H200 = devices.Seen(
    cuda_available=True,
    device_count=2,
    torch_cuda="13.2",
    driver="580.65.06",
    visible={"NVIDIA_VISIBLE_DEVICES": "GPU-a,GPU-b"},
    capabilities=((9, 0), (9, 0)),
    arch_list=("sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"),
)
NO_DRIVER = dataclasses.replace(
    H200, cuda_available=False, device_count=0, driver=None, visible={}, capabilities=(), arch_list=()
)


@pytest.mark.parametrize(
    ("requested", "seen", "want_words"),
    [
        (0, NO_DRIVER, None),
        (2, H200, None),
        (1, dataclasses.replace(H200, device_count=1, capabilities=((9, 0),)), None),
        (2, dataclasses.replace(H200, torch_cuda=None), ["CPU build"]),
        (1, dataclasses.replace(NO_DRIVER, error="Found no NVIDIA driver on your system."), ["unusable", "no NVIDIA"]),
        (4, H200, ["is 4", "only 2 CUDA device(s)", "device plugin"]),
        # V100: sm_75 kernels do not run on 7.0, whatever the shared major version suggests.
        (1, dataclasses.replace(H200, capabilities=((7, 0), (7, 0))), ["compute capability 7.0", "sm_75"]),
    ],
)
def test_the_gpus_asked_for_are_usable_or_the_problem_is_named(requested, seen, want_words):
    found = devices.problem(requested, seen)
    if want_words is None:
        assert found is None
    else:
        assert found is not None
        assert all(word in found for word in want_words), found


@pytest.mark.parametrize(
    ("capability", "arch_list", "want"),
    [
        ((8, 6), ("sm_80",), True),
        ((8, 0), ("sm_86",), False),
        ((7, 0), ("sm_75", "sm_80"), False),
        ((12, 0), ("sm_90", "compute_90"), True),
        ((8, 9), ("sm_90", "compute_90"), False),
        ((10, 0), ("sm_100a",), True),
    ],
)
def test_torch_kernels_run_on_the_same_major_and_ptx_on_anything_newer(capability, arch_list, want):
    assert devices.capability_supported(capability, arch_list) is want


def test_an_old_driver_is_named_with_the_floor_cuda_13_needs():
    seen = dataclasses.replace(NO_DRIVER, driver="550.54.15", error="The NVIDIA driver on your system is too old")
    found = devices.problem(1, seen)
    assert found is not None and "needs NVIDIA driver 580 or newer" in found and "550.54.15" in found
    assert "needs NVIDIA driver" not in (devices.problem(1, dataclasses.replace(seen, driver="580.95.05")) or "")


def test_unusable_gpus_fail_with_exit_66_and_everything_seen():
    seen = dataclasses.replace(H200, device_count=1, capabilities=((9, 0),), visible={"CUDA_VISIBLE_DEVICES": "0"})
    with pytest.raises(errors.GPUUnavailable) as caught:
        devices.check(2, seen, environ={})
    assert caught.value.exit_code == 66 == contract.EXIT_GPU_UNAVAILABLE
    assert caught.value.reason == "GPUUnavailable"
    for fact in (
        "driver 580.65.06",
        "CUDA 13.2",
        "1 CUDA device(s)",
        "CUDA_VISIBLE_DEVICES=0",
        "NVIDIA_VISIBLE_DEVICES=unset",
    ):
        assert fact in caught.value.message
    assert devices.ALLOW_CPU_FALLBACK_ENV in caught.value.message


def test_gpu_unavailable_fails_the_job_at_once():
    (entry,) = [e for e in contract.EXIT_CODES if e.code == 66]
    assert (entry.reason, entry.retryable) == ("GPUUnavailable", False)
    assert 66 in contract.NO_RETRY_EXIT_CODES and contract.EXIT_REASONS[66] == "GPUUnavailable"


@pytest.mark.parametrize("value", ["1", "true", "yes"])
def test_stand_in_clusters_opt_out_and_get_the_problem_back(value):
    found = devices.check(1, NO_DRIVER, environ={devices.ALLOW_CPU_FALLBACK_ENV: value})
    assert found is not None and "CUDA is unusable" in found


@pytest.mark.parametrize("value", ["", "0", "false"])
def test_anything_else_is_no_opt_out(value):
    with pytest.raises(errors.GPUUnavailable):
        devices.check(1, NO_DRIVER, environ={devices.ALLOW_CPU_FALLBACK_ENV: value})


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.65.06  Sun Jul 27 07:09:17 UTC 2025\n", "580.65.06"),
        ("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  570.86.15  Release Build\n", "570.86.15"),
        ("no driver here", None),
    ],
)
def test_driver_version_is_read_from_proc(text, want):
    assert devices.parse_proc_driver_version(text) == want


def test_driver_version_prefers_nvidia_smi_then_falls_back_to_proc(tmp_path, monkeypatch):
    proc = tmp_path / "version"
    proc.write_text("NVRM version: NVIDIA UNIX x86_64 Kernel Module  575.57.08  Sat May 24 2025\n")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert devices.driver_version(proc=proc) == "575.57.08"
    assert devices.driver_version(proc=tmp_path / "absent") is None
    smi = tmp_path / "bin" / "nvidia-smi"
    smi.parent.mkdir()
    smi.write_text("#!/bin/sh\nprintf '580.65.06\\n580.65.06\\n'\n")
    smi.chmod(smi.stat().st_mode | stat.S_IXUSR)
    assert devices.driver_version(proc=proc) == "580.65.06"


class FakeCuda:
    """What torch.cuda answers on a node: `count` devices, or an init error."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, count: int, error: str | None = None) -> None:
        self.selected: list[int] = []
        self.initialized = False

        def init() -> None:
            self.initialized = True
            if error is not None:
                raise RuntimeError(error)

        monkeypatch.setattr(torch.cuda, "init", init)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: error is None and count > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=None: (9, 0))
        monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: ["sm_80", "sm_90"])
        monkeypatch.setattr(torch.cuda, "set_device", self.selected.append)
        monkeypatch.setattr(torch.version, "cuda", "13.2")
        monkeypatch.setattr(devices, "driver_version", lambda: "580.65.06")


def test_each_rank_is_pinned_to_its_own_gpu_before_anything_is_loaded(monkeypatch):
    cuda = FakeCuda(monkeypatch, count=4)
    assert devices.start(4, environ={"LOCAL_RANK": "3", "LOCAL_WORLD_SIZE": "4"}) is None
    assert cuda.selected == [3]


def test_a_start_without_cuda_fails_before_anything_else(monkeypatch):
    FakeCuda(monkeypatch, count=0, error="Found no NVIDIA driver on your system. Please check ...")
    with pytest.raises(errors.GPUUnavailable) as caught:
        devices.start(1, environ={"NVIDIA_VISIBLE_DEVICES": "all"})
    assert "Found no NVIDIA driver on your system." in caught.value.message
    assert "NVIDIA_VISIBLE_DEVICES=all" in caught.value.message


def test_the_opt_out_warns_loudly_and_goes_on(monkeypatch, caplog):
    cuda = FakeCuda(monkeypatch, count=0, error="Found no NVIDIA driver on your system.")
    found = devices.start(1, environ={devices.ALLOW_CPU_FALLBACK_ENV: "1"})
    assert found is not None and "Found no NVIDIA driver" in found
    assert any(r.levelname == "WARNING" and "GPU CHECK FAILED" in r.getMessage() for r in caplog.records)
    assert cuda.selected == []


def test_a_cpu_job_never_touches_cuda(monkeypatch):
    cuda = FakeCuda(monkeypatch, count=0, error="must not be called")
    assert devices.start(0, environ={}) is None
    assert not cuda.initialized


def test_quantized_weights_load_onto_this_ranks_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(devices, "bf16_supported", lambda: True)
    monkeypatch.setenv("LOCAL_RANK", "2")
    kwargs = base.quantization_kwargs(api_spec.Quantization(bits=4))
    assert kwargs["device_map"] == {"": 2}


def emulating_gpu(monkeypatch: pytest.MonkeyPatch, *, major: int) -> None:
    """A GPU of compute capability `major`.0 on which a bf16 tensor can be made (emulated or not)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None: types.SimpleNamespace(major=major))
    monkeypatch.setattr(torch.cuda, "_check_bf16_tensor_supported", lambda device: True)


def test_emulated_bf16_does_not_count(monkeypatch):
    emulating_gpu(monkeypatch, major=7)
    assert devices.bf16_supported() is False
    assert arguments.precision("auto") == "fp16"
    assert base.load_dtype("auto") == torch.float32


def test_bf16_in_hardware_is_used(monkeypatch):
    emulating_gpu(monkeypatch, major=8)
    assert devices.bf16_supported() is True
    assert arguments.precision("auto") == "bf16"


def cgroup(root: pathlib.Path, files: dict[str, str]) -> pathlib.Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.mark.parametrize(
    ("files", "want"),
    [
        ({"cpu.max": "200000 100000\n"}, 2),
        ({"cpu.max": "150000 100000\n"}, 2),
        ({"cpu.max": "50000 100000\n"}, 1),
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "400000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 4),
        ({"cpu,cpuacct/cpu.cfs_quota_us": "250000\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}, 3),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),
    ],
)
def test_the_cpu_limit_comes_from_the_cgroup_quota(tmp_path, files, want):
    assert cpus.cgroup_cpu_limit(cgroup(tmp_path, files)) == want


@pytest.mark.parametrize(
    ("affinity", "quota", "want"), [(64, "400000 100000", 4), (2, "400000 100000", 2), (8, "max 100000", 8)]
)
def test_usable_cpus_are_the_affinity_capped_by_the_quota(tmp_path, affinity, quota, want):
    assert cpus.usable_cpus(root=cgroup(tmp_path, {"cpu.max": quota}), affinity=affinity) == want


def test_the_processes_of_a_pod_share_its_cpus():
    assert cpus.cpus_per_process({"LOCAL_WORLD_SIZE": "4"}, cpus=8) == 2
    assert cpus.cpus_per_process({"LOCAL_WORLD_SIZE": "4"}, cpus=2) == 1
    assert cpus.cpus_per_process({}, cpus=6) == 6


def test_usable_cpus_default_to_this_process_and_its_cgroup():
    assert 1 <= cpus.usable_cpus() <= len(os.sched_getaffinity(0))


def test_loader_workers_and_tokenizer_processes_follow_the_pods_cpus_not_the_nodes(monkeypatch):
    counts: dict[str, Any] = {"cpus": 3}
    monkeypatch.setattr(cpus, "usable_cpus", lambda **_: counts["cpus"])
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert arguments.loader_workers(cuda=True) == 2
    assert arguments.loader_workers(cuda=False) == 0
    assert data.map_processes(data.PARALLEL_MAP_MIN_RECORDS) == 3
    assert data.map_processes(data.PARALLEL_MAP_MIN_RECORDS - 1) is None
    counts["cpus"] = 64
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    assert arguments.loader_workers(cuda=True) == 4
    assert data.map_processes(data.PARALLEL_MAP_MIN_RECORDS) == 8
