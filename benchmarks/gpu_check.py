"""``make gpu-check`` / ``hack/gpu-check.sh``: one offline run that says whether kubeft trains on this
machine's GPUs, and how fast, in at most 8 minutes on one H100/H200-class GPU.

Steps, each recorded as passed, failed or skipped with its figures:

1. environment: driver, CUDA, torch and library versions, every visible GPU; the trainer's own GPU
   verdict (``kubeft_trainer.devices``). Fails when the trainer would not use the GPU.
2. kubeft LoRA, bf16: a Llama-3-8B-shaped model (random weights, built here) at sequence length
   4096, or the largest preset that kubeft's fit estimate puts in this GPU's memory, trained through
   the operator's launcher command with the config file and environment it renders for a pod
   (:mod:`benchmarks.pod`); tokens/s and MFU (6·N·tokens/s over the GPU's dense bf16 peak).
3. the PEFT quick tour (transformers ``Trainer`` + ``peft.get_peft_model``, no kubeft) on the same
   model and data in the same run, and kubeft's ratio to it.
4. QLoRA, 4-bit, on a Llama-3.2-1B-shaped model for a few steps, its adapter exported to a local store
   (:mod:`benchmarks.stores`: SeaweedFS when its ``weed`` binary is here, else the Hub stand-in; the
   trainer has no local-directory output) and listed back from it.
5. with 2+ GPUs, a 2-process DDP step through the same launcher;
6. with 2+ GPUs, the same run fully sharded (``spec.training.parallelism: fsdp``), failed when the
   trainer's log does not show that it sharded;
7. ``benchmarks/results/gpu-check.json`` and ``gpu-check.md``.

Nothing is downloaded: models are built from configs (:mod:`benchmarks.trainer_throughput`), the
tokenizer is hack/tiny_models.py's, ``HF_HUB_OFFLINE=1``. ``--cpu-smoke`` runs the same code with
tiny shapes on the CPU in about two minutes; what needs a GPU says "skipped: no GPU".
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import importlib.metadata
import importlib.util
import json
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from benchmarks import measures, stores, trainer_throughput, workdirs
from kubeft_operator.api import estimate

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SMOKE_RESULTS = pathlib.Path("/tmp/kubeft-gpu-check-smoke")
SMOKE_ENV = "KUBEFT_GPU_CHECK_CPU_SMOKE"
BUDGET_SECONDS = {"gpu": 480.0, "cpu-smoke": 300.0}
NO_GPU = "no GPU"
# Largest first: the first (preset, batch) whose fit estimate fits is the one measured. The estimate is
# the quick tour's (no gradient checkpointing, a batch padded to the full 4096 tokens at worst), the side
# that needs more memory; kubeft's packed batches never need more.
CANDIDATES = (("llama-8b", 2), ("llama-8b", 1), ("llama-1b", 4), ("llama-1b", 2), ("llama-1b", 1))
MEMORY_HEADROOM = 0.9
# Optimizer steps per side: enough after the warm-up for a stable tokens/s, few enough that building the
# 8B model, loading it twice and training both sides fit the budget with QLoRA and DDP after them.
GPU_STEPS = 60
SMOKE_STEPS = 10
QLORA_PRESET = "llama-1b"
QLORA_MAX_LENGTH = 1024
QLORA_RECORDS = 16


@dataclasses.dataclass(frozen=True)
class Mode:
    """What this run can use: the GPU mode, or the same steps with tiny shapes on the CPU."""

    name: str  # "gpu" or "cpu-smoke"
    device: str

    @property
    def smoke(self) -> bool:
        return self.name == "cpu-smoke"


TITLES = {
    "environment": "driver, CUDA, torch; would the trainer use the GPU?",
    "kubeft-lora": "kubeft LoRA through the launcher with the pod's config and env",
    "quick-tour-baseline": "PEFT quick tour (Trainer + get_peft_model, no kubeft), same model and data",
    "qlora-export": "QLoRA 4-bit on a ~1B Llama-shaped model, adapter exported and listed back",
    "ddp": "2-GPU DDP step through the launcher",
    "fsdp": "2-GPU FSDP step through the launcher",
}


@dataclasses.dataclass
class Context:
    """What every step after the environment gets: the mode, the facts found, files, the store, the deadline."""

    mode: Mode
    facts: dict[str, Any]
    workdir: pathlib.Path
    store: stores.Store
    deadline: float  # time.monotonic()
    small: SmallModel | None = None  # built by the QLoRA step, trained again by the DDP step

    def remaining(self) -> float:
        return max(1.0, self.deadline - time.monotonic())


def step(name: str, title: str, status: str, *, reason: str | None = None, **figures: Any) -> dict[str, Any]:
    """One step's record: `status` is passed, failed or skipped; `reason` says why it failed or was skipped."""
    return {"name": name, "title": title, "status": status, "reason": reason, "notes": [], **figures}


def timed(names: tuple[str, ...], run: Callable[[], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The records `run` returns, each with the seconds it took; an exception becomes failed records for
    `names`, so that the check still writes its results (and says what went wrong) when a step breaks."""
    began = time.monotonic()
    try:
        records = run()
    except Exception as exc:
        log(f"{', '.join(names)}: {type(exc).__name__}: {exc}")
        records = [
            step(name, TITLES[name], "failed", reason=f"{type(exc).__name__}: {str(exc)[:500]}") for name in names
        ]
    for record in records:
        record["seconds"] = time.monotonic() - began
    return records


def log(message: str) -> None:
    print(f"[gpu-check {time.strftime('%H:%M:%S')}] {message}", flush=True)


# ------------------------------------------------------------------------------- 1. environment


def _run(argv: list[str]) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _version(package: str) -> str | None:
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        return importlib.metadata.version(package)
    return None


def environment_facts() -> dict[str, Any]:
    """Driver, CUDA, torch and libraries, every visible GPU, and the trainer's own verdict on one GPU."""
    import torch

    from kubeft_trainer import devices

    smi = shutil.which("nvidia-smi")
    seen = devices.observe() if torch.version.cuda is not None else None
    available = bool(seen and seen.cuda_available)
    gpus = []
    for index in range(seen.device_count if seen else 0):
        props = torch.cuda.get_device_properties(index)
        with torch.cuda.device(index):
            bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
        peak = measures.peak_bf16_flops(props.name)
        gpus.append(
            {
                "index": index,
                "name": props.name,
                "capability": f"{props.major}.{props.minor}",
                "memory_bytes": props.total_memory,
                "bf16": bf16,
                "bf16_peak_flops": peak[1] if peak else None,
                "bf16_peak_source": peak[0] if peak else "unknown peak",
            }
        )
    return {
        "nvidia_smi": _run([smi]) if smi else None,
        "nvidia_smi_query": _run(
            [smi, "--query-gpu=index,name,driver_version,memory.total,compute_cap", "--format=csv,noheader"]
        )
        if smi
        else None,
        "driver": seen.driver if seen else devices.driver_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if available else None,  # type: ignore[no-untyped-call]
        "cuda_available": available,
        "cuda_error": seen.error if seen else None,
        "device_count": len(gpus),
        "gpus": gpus,
        "trainer_verdict": devices.problem(1, seen) if seen else "this torch is a CPU build (no CUDA)",
        "trainer_seen": seen.describe() if seen else None,
        "python": platform.python_version(),
        "versions": {
            name: _version(name)
            for name in ("transformers", "peft", "accelerate", "datasets", "bitsandbytes", "flash-attn", "kernels")
        },
    }


def environment_step(mode: Mode, facts: dict[str, Any]) -> dict[str, Any]:
    title = TITLES["environment"]
    if mode.smoke:
        record = step("environment", title, "passed")
        record["notes"].append(f"trainer's GPU verdict: skipped: {NO_GPU} (--cpu-smoke)")
        return record
    problem = facts["trainer_verdict"]
    if problem is not None:
        return step(
            "environment",
            title,
            "failed",
            reason=f"the trainer would not use the GPU: {problem}. Seen: {facts['trainer_seen']}",
        )
    no_bf16 = [g["name"] for g in facts["gpus"] if not g["bf16"]]
    if no_bf16:
        return step("environment", title, "failed", reason=f"no bf16 in hardware on {', '.join(no_bf16)}")
    record = step("environment", title, "passed")
    record["notes"].append(f"trainer's GPU verdict: usable ({facts['trainer_seen']})")
    return record


# ------------------------------------------------------------------------------- 2-3. LoRA throughput


def fit_estimate_gib(preset_name: str, batch_size: int) -> float:
    """GiB kubeft's fit estimate gives the quick tour's LoRA run of `preset_name` at its full sequence length."""
    preset = trainer_throughput.PRESETS[preset_name]
    shape = estimate.Shape.from_config({"model_type": "llama", **preset.llama_config()})
    workload = trainer_throughput.Workload(train_records=0, eval_records=0, repeats=1)
    run = estimate.Run(
        method="lora",
        weight_dtype=preset.dtype,
        rank=workload.lora_r,
        target_modules=workload.target_modules,
        sequence_length=preset.max_length,
        batch_size=batch_size,
        gradient_checkpointing=False,
    )
    return estimate.estimate(shape, run).total / estimate.GIB


def choose_preset(memory_bytes: int) -> tuple[str, int, str]:
    """(preset, batch size, why) for a GPU with `memory_bytes`: the largest candidate that fits."""
    limit = MEMORY_HEADROOM * memory_bytes / estimate.GIB
    for name, batch in CANDIDATES:
        need = fit_estimate_gib(name, batch)
        if need <= limit:
            why = (
                f"{name} at batch {batch}: kubeft's fit estimate for the quick tour's run (no gradient "
                f"checkpointing, batches padded up to {trainer_throughput.PRESETS[name].max_length} tokens) is "
                f"{need:.0f} GiB, within {100 * MEMORY_HEADROOM:.0f}% of this GPU's {memory_bytes / estimate.GIB:.0f} "
                f"GiB; larger candidates did not fit. {GPU_STEPS} steps per side keep the whole check within "
                f"{BUDGET_SECONDS['gpu'] / 60:.0f} minutes."
            )
            return name, batch, why
    smallest = CANDIDATES[-1]
    return (
        smallest[0],
        smallest[1],
        f"no candidate fits this GPU's {memory_bytes / estimate.GIB:.0f} GiB by the estimate; trying the smallest",
    )


def lora_steps(ctx: Context) -> list[dict[str, Any]]:
    """Steps 2 and 3: one round of the quick tour and kubeft on the same model and data."""
    mode, facts, workdir = ctx.mode, ctx.facts, ctx.workdir
    if mode.smoke:
        preset_name, batch, why = "cpu-tiny", trainer_throughput.PRESETS["cpu-tiny"].batch_size, "tiny shapes"
        steps = SMOKE_STEPS
    else:
        preset_name, batch, why = choose_preset(facts["gpus"][0]["memory_bytes"])
        steps = GPU_STEPS
    preset = dataclasses.replace(trainer_throughput.PRESETS[preset_name], batch_size=batch)
    workload = trainer_throughput.Workload(train_records=steps * batch, eval_records=2 * batch, repeats=1)
    log(f"2-3. LoRA: {preset_name}, batch {batch}, seq {preset.max_length}: {why}")
    started = time.monotonic()
    prepared = trainer_throughput.prepare(workdir / "lora", preset, workload, device=mode.device)
    build_seconds = time.monotonic() - started
    runs = trainer_throughput.run_sides(
        trainer_throughput.base_spec(prepared, preset, workload, device=mode.device),
        workdir=workdir / "lora",
        sides=("baseline", "kubeft"),
        repeats=1,
        store=ctx.store,
        log=log,
        deadline=ctx.deadline,
    )
    summary = trainer_throughput.summarise(
        runs,
        preset_name=preset_name,
        preset=preset,
        workload=workload,
        prepared=prepared,
        device=mode.device,
        device_name=facts["gpus"][0]["name"] if facts["gpus"] and not mode.smoke else None,
    )
    model = {
        "preset": preset_name,
        "why": why,
        "params": preset.params,
        "batch_size": batch,
        "max_length": preset.max_length,
        "dtype": preset.dtype,
        "steps": steps,
        "build_seconds": build_seconds,
        "token_weighted_length": summary["data"]["token_weighted_length"],
    }
    by_side = {r["side"]: r for r in runs}
    return [
        _lora_record(mode, by_side["kubeft"], summary, model),
        _baseline_record(by_side["baseline"], summary),
    ]


def _figures(run: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    side = summary["sides"].get(run["side"], {})
    out = {
        "exit_code": run.get("exit_code"),
        "end_to_end_seconds": run.get("end_to_end_seconds"),
        "tokens_per_second": run.get("tokens_per_second"),
        "steps_metered": run.get("steps"),
        "tokens_real": run.get("tokens_real"),
        "padding_ratio": run.get("padding_ratio"),
        "peak_gpu_memory_bytes": run.get("peak_accelerator_bytes"),
        "peak_rss_bytes": run.get("peak_rss_bytes"),
        "torch_threads": run.get("torch_threads"),
        "first_train_loss": run.get("first_train_loss"),
        "final_train_loss": run.get("final_train_loss"),
        "eval_loss": run.get("eval_loss"),
        "mfu_6n": side.get("mfu_6n"),
        "mfu_4n_attention": side.get("mfu"),
        "bf16_peak_flops": summary["bf16_peak_flops"],
        "bf16_peak_source": summary["bf16_peak_source"] or ("unknown peak" if summary["device"] == "cuda" else None),
    }
    if run.get("exit_code") != 0:
        out["error"] = (run.get("error") or "")[-2000:]
    return out


def _lora_record(mode: Mode, run: dict[str, Any], summary: dict[str, Any], model: dict[str, Any]) -> dict[str, Any]:
    title = TITLES["kubeft-lora"]
    figures = _figures(run, summary)
    if run.get("exit_code") != 0:
        return step("kubeft-lora", title, "failed", reason="the trainer failed; see error", model=model, **figures)
    if not mode.smoke and not run.get("peak_accelerator_bytes"):
        return step(
            "kubeft-lora",
            title,
            "failed",
            reason="the trainer trained without allocating GPU memory: it did not use the GPU",
            model=model,
            **figures,
        )
    record = step("kubeft-lora", title, "passed", model=model, **figures)
    record["artifact"] = (run.get("termination") or {}).get("artifact")
    if mode.smoke:
        record["notes"].append(f"bf16 and MFU: skipped: {NO_GPU} (float32 on the CPU)")
    elif summary["bf16_peak_flops"] is None:
        record["notes"].append(f"MFU: unknown peak for {summary['device_name']} (not in measures.BF16_PEAK_FLOPS)")
    return record


def _baseline_record(run: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    title = TITLES["quick-tour-baseline"]
    figures = _figures(run, summary)
    if run.get("exit_code") != 0:
        return step("quick-tour-baseline", title, "failed", reason="the quick tour failed; see error", **figures)
    ratios = summary["ratios"]
    return step(
        "quick-tour-baseline",
        title,
        "passed",
        kubeft_over_baseline_tokens_per_second=ratios.get("tokens_per_second"),
        kubeft_over_baseline_peak_memory=ratios.get("peak_memory"),
        **figures,
    )


# ------------------------------------------------------------------------------- 4-5. QLoRA, DDP, FSDP


@dataclasses.dataclass(frozen=True)
class SmallModel:
    """The ~1B model (tiny in smoke mode) the QLoRA and DDP steps train."""

    preset_name: str
    preset: trainer_throughput.Preset
    workload: trainer_throughput.Workload
    prepared: trainer_throughput.Prepared
    build_seconds: float


def small_model(ctx: Context) -> SmallModel:
    """The model and data of the QLoRA and DDP steps, built on first use."""
    if ctx.small is not None:
        return ctx.small
    mode = ctx.mode
    name = "cpu-tiny" if mode.smoke else QLORA_PRESET
    preset = trainer_throughput.PRESETS[name]
    if not mode.smoke:
        preset = dataclasses.replace(preset, max_length=QLORA_MAX_LENGTH, batch_size=2)
    workload = trainer_throughput.Workload(train_records=QLORA_RECORDS, eval_records=4, repeats=1, skip_steps=2)
    began = time.monotonic()
    prepared = trainer_throughput.prepare(ctx.workdir / "small", preset, workload, device=mode.device)
    ctx.small = SmallModel(
        preset_name=name,
        preset=preset,
        workload=workload,
        prepared=prepared,
        build_seconds=time.monotonic() - began,
    )
    return ctx.small


def qlora_step(ctx: Context) -> dict[str, Any]:
    """QLoRA (LoRA in smoke mode) for a few steps, exported to the store, and the adapter listed back from it."""
    mode, store, small = ctx.mode, ctx.store, small_model(ctx)
    title = TITLES["qlora-export"]
    spec = trainer_throughput.base_spec(small.prepared, small.preset, small.workload, device=mode.device)
    output_name = "gpu-check-qlora"
    spec |= {"side": "kubeft", "output_name": output_name, "method": {"type": "qlora" if not mode.smoke else "lora"}}
    if not mode.smoke:
        spec["quantization"] = {"bits": 4}
    log(f"4. {'LoRA (smoke)' if mode.smoke else 'QLoRA 4-bit'} on {small.preset_name}, export to {store.kind}")
    run = trainer_throughput.launch(spec, ctx.workdir / "qlora", store=store, timeout=ctx.remaining())
    files = store.files(output_name)
    figures: dict[str, Any] = {
        "preset": small.preset_name,
        "params": small.preset.params,
        "method": spec["method"]["type"],
        "quantization": spec.get("quantization"),
        "store": store.kind,
        "store_description": store.description,
        "model_build_seconds": small.build_seconds,
        "exit_code": run.get("exit_code"),
        "steps_metered": run.get("steps"),
        "tokens_per_second": run.get("tokens_per_second"),
        "peak_gpu_memory_bytes": run.get("peak_accelerator_bytes"),
        "final_train_loss": run.get("final_train_loss"),
        "end_to_end_seconds": run.get("end_to_end_seconds"),
        "artifact": (run.get("termination") or {}).get("artifact"),
        "exported_files": files,
    }
    if run.get("exit_code") != 0:
        return step(
            "qlora-export", title, "failed", reason="the trainer failed; see error", error=run.get("error"), **figures
        )
    if not files.get("adapter_model.safetensors"):
        return step(
            "qlora-export",
            title,
            "failed",
            reason=f"the store holds no adapter_model.safetensors for {output_name}: {sorted(files)}",
            **figures,
        )
    record = step("qlora-export", title, "passed", **figures)
    if mode.smoke:
        record["notes"].append(
            f"4-bit quantization: skipped: {NO_GPU} (bitsandbytes needs CUDA); ran LoRA on the same path"
        )
    return record


def _two_processes(ctx: Context, key: str, *, say: str, **extra: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The skip record when fewer than 2 GPUs are visible; else the launcher's `--num_processes 2`
    run (spec.resources.gpus: 2) of LoRA bf16 on the ~1B model, with `extra` spec fields, and its figures."""
    if ctx.mode.smoke:
        return step(key, TITLES[key], "skipped", reason=f"{NO_GPU} (needs 2)"), {}
    if ctx.facts["device_count"] < 2:
        return step(key, TITLES[key], "skipped", reason=f"needs 2 GPUs, {ctx.facts['device_count']} visible"), {}
    small = small_model(ctx)
    spec = trainer_throughput.base_spec(small.prepared, small.preset, small.workload, device=ctx.mode.device)
    spec |= {"side": "kubeft", "output_name": f"gpu-check-{key}", "gpus": 2, **extra}
    log(say)
    run_dir = ctx.workdir / key
    run = trainer_throughput.launch(spec, run_dir, store=ctx.store, timeout=ctx.remaining())
    worker_log = run_dir / "worker.log"
    figures: dict[str, Any] = {
        "processes": 2,
        "exit_code": run.get("exit_code"),
        "ranks_metered": run.get("ranks"),
        "tokens_per_second_all_ranks": run.get("tokens_per_second_all_ranks"),
        "peak_gpu_memory_bytes": run.get("peak_gpu_memory_bytes"),
        "end_to_end_seconds": run.get("end_to_end_seconds"),
        "log": worker_log.read_text(errors="replace") if worker_log.is_file() else "",
    }
    if run.get("exit_code") != 0 or run.get("ranks") != 2:
        figures.pop("log")
        return step(
            key, TITLES[key], "failed", reason="not both ranks trained; see error", error=run.get("error"), **figures
        ), {}
    return {}, figures


def ddp_step(ctx: Context) -> dict[str, Any]:
    """With 2+ GPUs: two processes, each with a whole replica."""
    ended, figures = _two_processes(ctx, "ddp", say="5. DDP: 2 processes, LoRA bf16")
    if ended:
        return ended
    figures.pop("log")
    return step("ddp", TITLES["ddp"], "passed", **figures)


# The trainer's line when the Trainer sharded the model (kubeft_trainer/train/trainer.py).
FSDP_LINE = "FSDP: parameters, gradients and optimizer state fully sharded over 2 processes"


def fsdp_step(ctx: Context) -> dict[str, Any]:
    """With 2+ GPUs: :func:`ddp_step`'s run with `spec.training.parallelism: fsdp` (full sharding)."""
    ended, figures = _two_processes(
        ctx, "fsdp", say="6. FSDP: 2 processes, LoRA bf16, fully sharded", parallelism="fsdp"
    )
    if ended:
        return ended
    figures["sharded"] = FSDP_LINE in figures.pop("log")
    if not figures["sharded"]:
        reason = f"the run trained without FSDP (no {FSDP_LINE!r} in its log)"
        return step("fsdp", TITLES["fsdp"], "failed", reason=reason, **figures)
    return step("fsdp", TITLES["fsdp"], "passed", **figures)


# ------------------------------------------------------------------------------- 7. results


def _fmt(value: Any, spec: str, unit: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{unit}"


def _bytes(value: int | None) -> str:
    if value is None:
        return "-"
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value} B"


def _memory(record: dict[str, Any]) -> str:
    gpu = record.get("peak_gpu_memory_bytes")
    return f"peak GPU memory {_bytes(gpu)}" if gpu else f"peak RSS {_bytes(record.get('peak_rss_bytes'))}"


def step_summary(record: dict[str, Any]) -> str:
    """The figures of a step in one line, for the console and the markdown table."""
    name = record["name"]
    if record["status"] == "skipped" or "exit_code" not in record:
        return ""  # nothing ran: the reason says why
    if name in ("kubeft-lora", "quick-tour-baseline"):
        mfu = record.get("mfu_6n")
        peak = record.get("bf16_peak_source")
        parts = [
            f"{_fmt(record.get('tokens_per_second'), ',.0f')} tokens/s",
            f"MFU {_fmt(mfu and 100 * mfu, '.1f', '%')} (6·N·tokens/s over the {peak} bf16 peak)"
            if mfu is not None
            else f"MFU: {peak or 'skipped: ' + NO_GPU}",
            _memory(record),
            f"padding {_fmt(record.get('padding_ratio') and 100 * record['padding_ratio'], '.0f', '%')}",
        ]
        if name == "quick-tour-baseline":
            parts.append(f"kubeft / quick tour: {_fmt(record.get('kubeft_over_baseline_tokens_per_second'), '.2f')}x")
        return "; ".join(parts)
    if name == "qlora-export":
        files = record.get("exported_files") or {}
        adapter = files.get("adapter_model.safetensors")
        return (
            f"{record.get('method')} on {record.get('preset')}, {record.get('steps_metered')} steps metered, "
            f"adapter_model.safetensors {_bytes(adapter)} listed back from {record.get('store')} "
            f"({len(files)} files)"
        )
    if name in ("ddp", "fsdp"):
        return (
            f"{_fmt(record.get('tokens_per_second_all_ranks'), ',.0f')} tokens/s over "
            f"{record.get('ranks_metered')} ranks"
        )
    return ""


def markdown(result: dict[str, Any]) -> str:
    facts = result["environment"]
    verdict = "passed" if result["passed"] else "FAILED"
    gpus = ", ".join(f"{g['name']} ({g['memory_bytes'] / 2**30:.0f} GiB, sm {g['capability']})" for g in facts["gpus"])
    lines = [
        "# kubeft GPU check",
        "",
        f"Run by `{result['command']}` on {result['finished']} (commit {result['commit'] or 'unknown'}), mode "
        f"**{result['mode']}**, {result['seconds'] / 60:.1f} min. Verdict: **{verdict}**.",
        "",
        f"GPUs: {gpus or 'none'}. Driver {facts['driver'] or 'not found'}; torch {facts['torch']} (CUDA "
        f"{facts['torch_cuda'] or 'none'}, cuDNN {facts['cudnn'] or '-'}); "
        + ", ".join(f"{k} {v or 'not installed'}" for k, v in facts["versions"].items())
        + f"; Python {facts['python']}.",
        "",
        "| # | step | status | figures |",
        "|---:|---|---|---|",
    ]
    for i, record in enumerate(result["steps"], start=1):
        status = record["status"] + (f": {record['reason']}" if record.get("reason") else "")
        lines.append(f"| {i} | {record['title']} | {status} | {step_summary(record)} |")
    lines.append("")
    for record in result["steps"]:
        notes = list(record["notes"])
        if isinstance(record.get("model"), dict):
            notes.append(f"model: {record['model']['why']}")
        if record.get("store_description"):
            notes.append(f"export: {record['store_description']}")
        if record.get("error"):
            notes.append(f"error (last line): `{record['error'].strip().splitlines()[-1]}`")
        lines += [f"- {record['name']}: {note}" for note in notes]
    lines += ["", "Every figure, per step: `gpu-check.json` next to this file.", ""]
    return "\n".join(lines)


def _commit() -> str | None:
    return _run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])


# ------------------------------------------------------------------------------- main


def check(mode: Mode, *, workdir: pathlib.Path, store_kind: str, budget: float) -> dict[str, Any]:
    started = time.monotonic()
    deadline = started + budget
    log(f"mode {mode.name}, budget {budget / 60:.0f} min, work directory {workdir}")
    facts = environment_facts()
    for line in (facts["nvidia_smi"] or "nvidia-smi: not found").splitlines()[:12]:
        log(f"  {line}")
    log(
        f"1. torch {facts['torch']}, CUDA {facts['torch_cuda'] or 'none'}, cuDNN {facts['cudnn']}, driver "
        f"{facts['driver']}, {facts['device_count']} GPU(s)"
    )
    for g in facts["gpus"]:
        peak = _fmt(g["bf16_peak_flops"] and g["bf16_peak_flops"] / 1e12, ".0f", " TFLOP/s")
        log(
            f"   GPU {g['index']}: {g['name']}, sm {g['capability']}, {g['memory_bytes'] / 2**30:.1f} GiB, "
            f"bf16 {'yes' if g['bf16'] else 'no'}, dense bf16 peak {peak} ({g['bf16_peak_source']})"
        )
    steps = [environment_step(mode, facts)]
    if steps[0]["status"] == "failed":
        log(f"FAIL: {steps[0]['reason']}")
        steps += [
            step(name, TITLES[name], "skipped", reason="the environment check failed")
            for name in ("kubeft-lora", "quick-tour-baseline", "qlora-export", "ddp", "fsdp")
        ]
    else:
        try:
            with stores.running(store_kind, workdir=workdir) as store:
                log(f"export store: {store.description}")
                ctx = Context(mode=mode, facts=facts, workdir=workdir, store=store, deadline=deadline)
                steps += timed(("kubeft-lora", "quick-tour-baseline"), lambda: lora_steps(ctx))
                steps += timed(("qlora-export",), lambda: [qlora_step(ctx)])
                steps += timed(("ddp",), lambda: [ddp_step(ctx)])
                steps += timed(("fsdp",), lambda: [fsdp_step(ctx)])
        except Exception as exc:  # the store would not start (or stop): the steps it was for cannot tell
            log(f"export store {store_kind}: {type(exc).__name__}: {exc}")
            done = {record["name"] for record in steps}
            steps += [
                step(name, TITLES[name], "failed", reason=f"the export store failed: {type(exc).__name__}: {exc}")
                for name in ("kubeft-lora", "quick-tour-baseline", "qlora-export", "ddp", "fsdp")
                if name not in done
            ]
    for i, record in enumerate(steps, start=1):
        summary = step_summary(record)
        reason = f": {record['reason']}" if record.get("reason") else ""
        log(f"{i}. {record['name']}: {record['status']}{reason}{': ' + summary if summary else ''}")
        for note in record["notes"]:
            log(f"   {note}")
    return {
        "check": "kubeft gpu-check",
        "mode": mode.name,
        "environment": facts,
        "steps": steps,
        "passed": all(s["status"] != "failed" for s in steps),
        "seconds": time.monotonic() - started,
        "budget_seconds": budget,
    }


def write(result: dict[str, Any], out: pathlib.Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu-check.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (out / "gpu-check.md").write_text(markdown(result))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0].strip("`"))
    parser.add_argument(
        "--cpu-smoke",
        action="store_true",
        default=os.environ.get(SMOKE_ENV, "").lower() in ("1", "true", "yes"),
        help=f"the same steps with tiny shapes on the CPU, about 2 min (also {SMOKE_ENV}=1)",
    )
    parser.add_argument(
        "--out", type=pathlib.Path, help=f"where gpu-check.{{json,md}} go (default: {RESULTS}; smoke: {SMOKE_RESULTS})"
    )
    parser.add_argument("--workdir", type=pathlib.Path, help="keep models, data and logs here")
    parser.add_argument("--store", default="auto", choices=stores.KINDS, help="where adapters are exported")
    parser.add_argument("--budget", type=float, help="seconds for the whole check (default: 480; smoke 300)")
    args = parser.parse_args(argv)
    mode = Mode("cpu-smoke", "cpu") if args.cpu_smoke else Mode("gpu", "cuda")
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    began = datetime.datetime.now(datetime.UTC)
    with workdirs.workdir(args.workdir, prefix="kubeft-gpu-check-") as workdir:
        result = check(mode, workdir=workdir, store_kind=args.store, budget=args.budget or BUDGET_SECONDS[mode.name])
    result |= {
        "command": " ".join(["hack/gpu-check.sh", *(argv if argv is not None else sys.argv[1:])]),
        "started": began.strftime("%Y-%m-%d %H:%M UTC"),
        "finished": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _commit(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
    }
    # A smoke run is a test of the check, not a result: it stays out of benchmarks/results unless asked.
    out = args.out or (SMOKE_RESULTS if mode.smoke else RESULTS)
    write(result, out)
    log(f"{'PASSED' if result['passed'] else 'FAILED'}; results in {out / 'gpu-check.md'} and gpu-check.json")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
