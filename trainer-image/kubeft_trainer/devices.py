"""The devices a trainer process may use: the start-up GPU check, this rank's GPU, and its CPUs.

:func:`start` is the first thing :func:`kubeft_trainer.pipeline.run` does, before any download. A
pod that asked for GPUs (`spec.resources.gpus`) but cannot use them fails in seconds with
GPUUnavailable (exit 66, never retried: the node's driver, the device plugin or the image must
change) and a message naming what it saw, instead of training for hours on the CPU. Stand-in
clusters whose nodes advertise a fake `nvidia.com/gpu` (the local test cluster, `make demo`) opt out
with ``KUBEFT_ALLOW_CPU_FALLBACK=1``: the trainer then warns loudly and goes on with what it found.

The decisions are pure functions of observed facts (:class:`Seen`, :func:`problem`,
so tests feed them; :func:`observe` gathers the facts from torch, the
NVIDIA driver and the environment. The model loader and the training arguments read this rank's
device (:func:`local_rank`) and bf16 support (:func:`bf16_supported`) from here; their CPU share
comes from :mod:`kubeft_trainer.cpus`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
import re
import shutil
import subprocess
from collections.abc import Mapping

import torch

from kubeft_trainer import errors

log = logging.getLogger(__name__)

ALLOW_CPU_FALLBACK_ENV = "KUBEFT_ALLOW_CPU_FALLBACK"
VISIBLE_DEVICES_ENV = ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES")
PROC_DRIVER_VERSION = pathlib.Path("/proc/driver/nvidia/version")
# The oldest Linux driver each CUDA major version runs on (NVIDIA's minor version compatibility
# table). The image's torch bundles CUDA 13 libraries, hence driver 580 or newer on GPU nodes.
DRIVER_FLOOR = {13: 580, 12: 525, 11: 450}


@dataclasses.dataclass(frozen=True)
class Seen:
    """What this process found of CUDA, as found; None where it could not tell."""

    cuda_available: bool
    device_count: int
    torch_cuda: str | None  # torch.version.cuda: the CUDA this torch was built with; None in a CPU build
    driver: str | None  # the NVIDIA kernel driver's version
    visible: Mapping[str, str]  # CUDA_VISIBLE_DEVICES / NVIDIA_VISIBLE_DEVICES, where set
    capabilities: tuple[tuple[int, int], ...] = ()  # compute capability of each visible device
    arch_list: tuple[str, ...] = ()  # the GPU architectures torch carries kernels for (sm_XY, compute_XY)
    error: str | None = None  # why CUDA failed to initialize, in torch's words

    def describe(self) -> str:
        visible = ", ".join(f"{name}={self.visible.get(name, 'unset')}" for name in VISIBLE_DEVICES_ENV)
        cuda = self.torch_cuda or "none (a CPU build)"
        return (
            f"NVIDIA driver {self.driver or 'not found'}, torch built for CUDA {cuda}, "
            f"{self.device_count} CUDA device(s) visible, {visible}"
        )


def problem(requested: int, seen: Seen) -> str | None:
    """Why this pod cannot use the `requested` GPUs, or None when it can.

    Every process of the pod sees the same devices and comes to the same verdict, rank 0 included,
    whose exit code the launcher passes on.
    """
    if requested <= 0:
        return None
    asked = f"spec.resources.gpus is {requested}, but "
    if seen.torch_cuda is None:
        return asked + "this trainer's torch is a CPU build; use the kubeft trainer image (torch with CUDA)"
    if not seen.cuda_available or seen.device_count == 0:
        why = f" ({seen.error})" if seen.error else ""
        return asked + f"CUDA is unusable in this pod{why}{_driver_hint(seen)}"
    if seen.device_count < requested:
        return asked + f"only {seen.device_count} CUDA device(s) are visible; check the device plugin on the node"
    for index, capability in enumerate(seen.capabilities):
        if seen.arch_list and not capability_supported(capability, seen.arch_list):
            return asked + (
                f"GPU {index} has compute capability {capability[0]}.{capability[1]}, for which this torch has no "
                f"kernels (it carries {' '.join(seen.arch_list)}); run on a newer GPU"
            )
    return None


def _driver_hint(seen: Seen) -> str:
    """Names the driver floor when the driver found is older than the CUDA torch was built for."""
    if seen.torch_cuda is None or seen.driver is None:
        return ""
    cuda_major = int(seen.torch_cuda.split(".")[0])
    floor = DRIVER_FLOOR.get(cuda_major)
    try:
        driver_major = int(seen.driver.split(".")[0])
    except ValueError:
        return ""
    if floor is None or driver_major >= floor:
        return ""
    return f"; CUDA {cuda_major} needs NVIDIA driver {floor} or newer on the node, which has {seen.driver}"


def capability_supported(capability: tuple[int, int], arch_list: tuple[str, ...]) -> bool:
    """Whether torch's kernels run on a device: a cubin (sm_XY) runs on the same major version with an
    equal or higher minor; PTX (compute_XY) is compiled for any device at least that new."""
    major, minor = capability
    for arch in arch_list:
        match = re.fullmatch(r"(sm|compute)_(\d+)(\d)[a-z]?", arch)
        if match is None:
            continue
        kind, arch_major, arch_minor = match.group(1), int(match.group(2)), int(match.group(3))
        if kind == "sm" and arch_major == major and arch_minor <= minor:
            return True
        if kind == "compute" and (arch_major, arch_minor) <= (major, minor):
            return True
    return False


def allow_cpu_fallback(environ: Mapping[str, str]) -> bool:
    return environ.get(ALLOW_CPU_FALLBACK_ENV, "").strip().lower() in ("1", "true", "yes")


def local_rank(environ: Mapping[str, str] | None = None) -> int:
    """This process's index on its node (LOCAL_RANK, set by `accelerate launch`; 0 for a single process)."""
    env = os.environ if environ is None else environ
    return int(env.get("LOCAL_RANK") or 0)


def check(requested: int, seen: Seen, *, environ: Mapping[str, str]) -> str | None:
    """GPUUnavailable when the GPUs asked for are not usable; with the opt-out, the problem is returned instead."""
    found = problem(requested, seen)
    if found is None:
        return None
    message = f"{found}. Seen: {seen.describe()}"
    if not allow_cpu_fallback(environ):
        raise errors.GPUUnavailable(
            f"{message}. Fix the node, or ask for what it has (spec.resources.gpus: 0 trains on the CPU); "
            f"where nodes only pretend to have GPUs (a test cluster), set {ALLOW_CPU_FALLBACK_ENV}=1 on the trainer "
            "(chart: trainer.env) to train on what is there"
        )
    return message


def observe(environ: Mapping[str, str] | None = None) -> Seen:
    """The CUDA facts of this process. Initializes CUDA: call it only when GPUs were asked for."""
    env = os.environ if environ is None else environ
    error = None
    try:
        torch.cuda.init()  # type: ignore[no-untyped-call]  # unannotated in torch
    except (RuntimeError, AssertionError) as exc:
        # Torch's own words: "Found no NVIDIA driver", "The NVIDIA driver on your system is too old", ...
        error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    available = error is None and torch.cuda.is_available()
    count = torch.cuda.device_count() if available else 0
    return Seen(
        cuda_available=available,
        device_count=count,
        torch_cuda=torch.version.cuda,
        driver=driver_version(),
        visible={name: env[name] for name in VISIBLE_DEVICES_ENV if name in env},
        capabilities=tuple(torch.cuda.get_device_capability(i) for i in range(count)),
        arch_list=tuple(torch.cuda.get_arch_list()) if available else (),
        error=error,
    )


def driver_version(*, proc: pathlib.Path = PROC_DRIVER_VERSION) -> str | None:
    """The NVIDIA driver's version from nvidia-smi where the container has it, else from /proc."""
    smi = shutil.which("nvidia-smi")
    if smi is not None:
        try:
            out = subprocess.run(
                [smi, "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=20,
                check=False,
            ).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out.strip():
            return out.split()[0]
    try:
        return parse_proc_driver_version(proc.read_text())
    except OSError:
        return None


def parse_proc_driver_version(text: str) -> str | None:
    """`NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.65.06  Sun Jul 27 ...` -> 580.65.06."""
    match = re.search(r"Kernel Module\s+(?:for \S+\s+)?(\d+(?:\.\d+)+)", text)
    return match.group(1) if match else None


def start(requested: int, *, environ: Mapping[str, str] | None = None) -> str | None:
    """Check the GPUs asked for, then pin this rank to its own device; the opt-out's problem, if any.

    Runs before any download and before the model is placed: `device_map`, accelerate and every
    CUDA call after this use this rank's GPU, not cuda:0.
    """
    env = os.environ if environ is None else environ
    if requested <= 0:
        return None
    seen = observe(env)
    fallback = check(requested, seen, environ=env)
    rank = local_rank(env)
    if fallback is not None:
        banner = "!" * 100
        log.warning(
            "%s\nGPU CHECK FAILED, GOING ON ANYWAY (%s=1): %s\n%s", banner, ALLOW_CPU_FALLBACK_ENV, fallback, banner
        )
    else:
        log.info("GPU check passed: %s; this process uses cuda:%d", seen.describe(), rank)
    if seen.cuda_available and rank < seen.device_count:
        torch.cuda.set_device(rank)
    return fallback


def bf16_supported() -> bool:
    """bf16 in hardware on this rank's GPU (Ampere, compute capability 8.0, and newer).

    torch's plain `is_bf16_supported()` also says yes where bf16 is only emulated (V100, T4), where
    it runs several times slower than fp16: `auto` precision must pick fp16 there.
    """
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
