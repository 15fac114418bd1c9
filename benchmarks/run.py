"""``make bench`` / ``make bench-quick``: run every benchmark, then write benchmarks/results/.

Writes ``results.json`` (every measurement, per run), ``results.md`` (the tables of
docs/performance.md, with the machine and the load it was under) and ``scale.png`` (operator
figures against N). ``--only`` runs a subset; the other sections of an earlier results.json are
kept, so one section can be re-run on its own.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import logging
import math
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from benchmarks import operator_goals

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SECTIONS = ("trainer", "operator", "artifact")

# Targets from the issue; docs/performance.md explains each.
TARGET_SPEEDUP = {"cpu": 1.5, "cuda": 2.0}
# Operator goals at N=1,000 (issue 16) are declared in benchmarks/operator_goals.py; scale.png draws these.
TARGET_P99_SECONDS = operator_goals.GOAL_AFTER_DRAIN_P99_SECONDS
TARGET_RSS_BYTES = operator_goals.GOAL_RSS_PEAK_BYTES
TARGET_WRITES_PER_JOB = operator_goals.GOAL_WRITES_PER_JOB
BUSY_LOAD_FACTOR = 1.5  # load average above this many times the core count: the machine was shared
LOSS_TOLERANCE = 0.02  # relative difference of final train and eval loss that still counts as equivalent


def machine() -> dict[str, Any]:
    import psutil
    import torch

    model = next(
        (line.split(":", 1)[1].strip() for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor(),
    )  # fmt: skip
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    versions = {}
    for name in ("torch", "transformers", "peft", "accelerate", "kopf"):
        with contextlib.suppress(ImportError):
            versions[name] = __import__(name).__version__
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_bytes": psutil.virtual_memory().total,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "versions": versions,
        "commit": commit.stdout.strip() or None,
    }


def _quiet() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# ------------------------------------------------------------------------------------- tables


def _fmt(value: Any, spec: str = ".2f", unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:{spec}}{unit}"


def _mib(value: Any) -> str:
    return _fmt(value / 2**20 if value is not None else None, ".0f", " MiB")


def _row(*cells: str) -> str:
    return "| " + " | ".join(cells) + " |"


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "**missed**")


def trainer_table(t: dict[str, Any]) -> list[str]:
    if not t["complete"]:
        failed = [run for run in t["runs"] if run.get("exit_code") != 0]
        return [
            f"Incomplete: {len(failed)} run(s) failed. First error:",
            "",
            "```",
            (failed[0].get("error") or "")[-1500:] if failed else "",
            "```",
        ]
    from benchmarks import trainer_throughput

    device, r = t["device"], t["ratios"]
    sides = [s for s in trainer_throughput.SIDES if s in t["sides"]]
    cols = [t["sides"][s] for s in sides]
    stronger = r["stronger_baseline"]
    speed = r["tokens_per_second"]
    loss_ok = (
        abs(r["eval_loss_relative_difference"]) <= LOSS_TOLERANCE
        and abs(r["final_train_loss_relative_difference"]) <= LOSS_TOLERANCE
    )
    memory_ok = None if math.isnan(r["peak_memory"]) else r["peak_memory"] <= 1.0
    memory_bytes = "GPU memory allocated" if device == "cuda" else "RSS"
    k, b = t["sides"]["kubeft"], t["sides"][stronger]

    def row(label: str, key: str, spec: str, unit: str = "", *, scale: float = 1, ratio: str = "") -> str:
        return _row(label, *(_fmt(c[key] * scale if c.get(key) is not None else None, spec, unit) for c in cols), ratio)

    title = trainer_throughput.SIDE_TITLES
    rows = [
        f"Model `{t['preset']}` (Llama-style, {t['model']['layers']} layers, hidden {t['model']['hidden']}, "
        f"vocab {t['model']['vocab']}, random weights) on {t.get('device_name') or device}; "
        f"{t['data']['train_records']} training records of {t['data']['mean_length']:.0f} tokens on average "
        f"(max {t['data']['max_length']}, cap {t['model']['max_length']}), batch {t['model']['batch_size']}, one "
        f"epoch; {k['runs']} rounds, one run of each side per round, the order rotating; threads asked for "
        f"(--threads): {t.get('threads') or 'none, each process its default'}. kubeft runs through `python -m "
        "kubeft_trainer.launch` with the config file and environment the operator renders for its pod "
        f"(exporting to {t.get('store') or 'S3'}).",
        "",
        f"| | {' | '.join(title[s] for s in sides)} | kubeft / stronger baseline ({stronger}) |",
        f"|---|{'---:|' * len(sides)}---:|",
        row(
            f"real tokens/s, median run (after {t['workload']['skip_steps']} warm-up steps)",
            "tokens_per_second",
            ".0f",
            ratio=f"**{_fmt(speed, '.2f', 'x')}** (median of the rounds' ratios)",
        ),
        row(
            "real tokens/s, each step's fastest time over the runs (optimistic)",
            "tokens_per_second_fastest_steps",
            ".0f",
            ratio=_fmt(r["tokens_per_second_fastest_steps"], ".2f", "x"),
        ),
        _row(
            f"peak memory ({memory_bytes})",
            *(_mib(c["peak_memory_bytes"]) for c in cols),
            _fmt(r["peak_memory"], ".2f", "x"),
        ),
        row("padding share of tokens computed", "padding_ratio", ".0f", "%", scale=100),
        row("train loss, first step", "first_train_loss", ".4f"),
        row(
            "final train loss (mean of last quarter of steps)",
            "final_train_loss",
            ".4f",
            ratio=f"{_fmt(100 * r['final_train_loss_relative_difference'], '+.2f', '%')} vs {r['loss_baseline']}",
        ),
        row(
            "eval loss",
            "eval_loss",
            ".4f",
            ratio=f"{_fmt(100 * r['eval_loss_relative_difference'], '+.2f', '%')} vs {r['loss_baseline']}",
        ),
        row(
            "time per step outside forward/backward (data, optimizer, logging, callbacks)",
            "overhead_seconds_per_step",
            ".0f",
            " ms",
            scale=1000,
        ),
        row(
            "wall time, process start to exit (kubeft: launcher, accelerate and trainer)",
            "end_to_end_seconds",
            ".0f",
            " s",
            ratio=_fmt(r["end_to_end_seconds"], ".2f", "x"),
        ),
        row("achieved model TFLOP/s (4·N_matmul + 4·L·h·s)", "achieved_tflops", ".4f"),
        _row(
            "torch threads in the training process",
            *(", ".join(str(n) for n in c.get("torch_threads") or ["-"]) for c in cols),
            "",
        ),
    ]
    if t.get("bf16_peak_flops"):
        peak = f"{t['bf16_peak_source']} bf16 dense peak, {t['bf16_peak_flops'] / 1e12:.0f} TFLOP/s"
        rows.append(row(f"MFU, 6·N·tokens/s ({peak})", "mfu_6n", ".1f", "%", scale=100))
        rows.append(row(f"MFU, 4·N_matmul + 4·L·h·s ({peak})", "mfu", ".1f", "%", scale=100))
    elif device == "cuda":
        rows.append(_row("MFU", *("unknown peak" for _ in cols), ""))
    rounds = []
    for name, pairs in r["tokens_per_second_pairs_vs"].items():
        rounds.append(f"vs {name}: " + ", ".join(f"{x:.2f}x" for x in pairs))
    spreads = ", ".join(f"{s} {_fmt(100 * c['spread'], '.0f', '%')}" for s, c in zip(sides, cols, strict=True))
    rows += [
        "",
        f"kubeft's tokens/s over each baseline's, round by round: {'; '.join(rounds)}. The headline is the median "
        f"of the rounds' ratios against the stronger baseline, `{stronger}` (higher median tokens/s: "
        f"{_fmt(b['tokens_per_second'], '.0f')}). Run-to-run spread of tokens/s: {spreads}.",
        "",
        f"Targets: throughput ≥ {TARGET_SPEEDUP[device]}x the stronger baseline on {device}: "
        f"{_verdict(speed >= TARGET_SPEEDUP[device])}; "
        f"peak memory ≤ the stronger baseline's: {_verdict(memory_ok)}; "
        f"losses within {100 * LOSS_TOLERANCE:.0f}% of the quick tour's (same batches): {_verdict(loss_ok)}.",
    ]
    return rows


def operator_table(o: dict[str, Any]) -> list[str]:
    rows = [
        f"One operator, N FineTuneJobs created by {o['client_threads']} client threads at once on a fresh local "
        f"control plane per N; trainer pods stay Pending (no GPU node). After each burst drains, {o['trickle']} "
        "more jobs are applied one every 0.5 s.",
        "",
        "| N | apply→Job p50 / p99 | apply→status p50 / p99 | drained in | after drain: apply→Job p99 "
        "| RSS idle / peak | CPU per job | API writes per job (operator; self-count) | all writes per job |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for x in o["results"]:
        job, status, late = x["apply_to_job"], x["apply_to_status"], x["after_drain_apply_to_job"]
        rows.append(
            f"| {x['n']} | {_fmt(job.get('p50'), '.2f')} / {_fmt(job.get('p99'), '.2f')} s "
            f"| {_fmt(status.get('p50'), '.2f')} / {_fmt(status.get('p99'), '.2f')} s "
            f"| {_fmt(x['drain_seconds'], '.1f', ' s')}{'' if x['drained'] else ' (timed out)'} "
            f"| {_fmt(late.get('p99'), '.2f', ' s')} | {_mib(x['rss_idle_bytes'])} / {_mib(x['rss_peak_bytes'])} "
            f"| {_fmt(1000 * x['cpu_seconds_per_job'], '.0f', ' ms')} "
            f"| {_fmt(x['operator_writes_per_job'], '.2f')}; {_fmt(x['operator_self_reported_writes_per_job'], '.2f')} "
            f"| {_fmt(x['cluster_writes_per_job'], '.2f')} |"
        )
    comparison = o.get("comparison")
    if comparison:
        rows += [
            "",
            f"The goals (issue 16, set for N=1,000) at N={comparison['n']}, before and after (the "
            f"N={comparison['n']} row above is this checkout's first run there):",
            "",
            *operator_goals.table(comparison),
        ]
    return rows


def artifact_table(a: dict[str, Any]) -> list[str]:
    base = a["baseline"]
    projection = a["projection"]["methods"]
    rows = [
        f"Benchmark model: {base['model_bytes'] / 2**20:.1f} MiB of weights; uploading it whole (the baseline: what "
        f"a full fine-tune exports) took {base['upload_seconds'] * 1000:.0f} ms to the local S3 server. "
        f"Export = save adapter + model card + metrics + manifest, then upload; median of {a['repeats']}.",
        "",
        "| method | adapter file | % of base model | export + upload | vs full-model upload "
        f"| projected for the {a['projection']['preset']} shape: adapter / base, bytes in their dtypes |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for m in a["methods"]:
        p = projection.get(m["method"]) or projection.get("lora" if m["method"] == "qlora" else "")
        projected = _projected_bytes(p) if p else "-"
        if "skipped" in m:
            rows.append(
                f"| {m['method']} | not run: {m['skipped'].split(':')[0]} (needs a CUDA GPU) | | | | {projected} |"
            )
            continue
        rows.append(
            f"| {m['method']} | {m['adapter_bytes'] / 1024:.1f} KiB | {100 * m['fraction_of_base']:.3f}% "
            f"| {m['export_seconds'] * 1000:.0f} ms | {_fmt(m['export_time_ratio'], '.2f', 'x')} | {projected} |"
        )
    return rows


def _projected_bytes(p: dict[str, Any]) -> str:
    """`26.0 MiB float32 / 14.96 GiB bfloat16 (0.170%)`; older results without bytes: the parameter share."""
    if "trainable_bytes" not in p:
        return f"{100 * p['trainable_params'] / p['base_params']:.3f}% of parameters"
    return (
        f"{p['trainable_bytes'] / 2**20:.1f} MiB {'+'.join(p['trainable_dtypes'])} / "
        f"{p['base_bytes'] / 2**30:.2f} GiB {'+'.join(p['base_dtypes'])} "
        f"({100 * p['trainable_bytes'] / p['base_bytes']:.3f}%)"
    )


def _provenance(section: dict[str, Any]) -> str:
    meta = section.get("meta", {})
    return (
        f"_{'Quick' if meta.get('quick') else 'Full'} mode, `{meta.get('command', '?')}`, finished "
        f"{meta.get('finished', '?')} after {meta.get('minutes', float('nan')):.1f} min, commit {meta.get('commit')}._"
    )


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    load = results.get("load_average", {})
    lines = [
        "# kubeft benchmark results",
        "",
        f"Last written by `{results['command']}` on {results['finished']} (commit {m['commit']}).",
        f"Machine: {m['cpus']} CPU cores ({m['cpu_model']}), {m['memory_bytes'] / 2**30:.0f} GiB RAM, "
        f"GPU: {m['gpu'] or 'none'}; torch {m['versions'].get('torch')}, transformers "
        f"{m['versions'].get('transformers')}, peft {m['versions'].get('peft')}. "
        f"Load average (1 min) at start {load.get('start', '?')}, at end {load.get('end', '?')}. "
        "Absolute figures depend on the machine and on what else ran on it; compare the ratios, which come "
        "from baselines measured in the same run.",
        "",
    ]
    if "trainer" in results:
        lines += [
            "## Trainer throughput",
            "",
            _provenance(results["trainer"]),
            "",
            *trainer_table(results["trainer"]),
            "",
        ]
        busiest = max((s.get("max_load_average", 0) for s in results["trainer"]["sides"].values()), default=0)
        # A training worker alone keeps the load near the core count; well above it, others competed.
        if busiest > BUSY_LOAD_FACTOR * (m["cpus"] or 1):
            lines += [
                f"**Warning:** the 1-minute load average reached {busiest:.1f} on {m['cpus']} cores during the "
                "trainer runs: other processes competed for the CPU, so these throughput figures understate both "
                "sides and their ratio is unreliable. Re-run `make bench` on a quiet machine.",
                "",
            ]
        if results["trainer"]["device"] != "cuda":
            lines += ["No GPU run: none was available for these results, so there are no GPU or MFU figures.", ""]
    if "operator" in results:
        lines += ["## Operator scale", "", _provenance(results["operator"]), "", *operator_table(results["operator"])]
        lines += ["", "![scale](scale.png)", ""]
    for section, error in results.get("errors", {}).items():
        lines += [f"## {section}: failed", "", "```", error, "```", ""]
    if "artifact" in results:
        lines += ["## Artifact size", "", _provenance(results["artifact"]), "", *artifact_table(results["artifact"])]
        lines += [""]
    return "\n".join(lines)


def plot(operator: dict[str, Any], path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    results = sorted(operator["results"], key=lambda x: x["n"])
    n = [x["n"] for x in results]
    fig, axes = pyplot.subplots(2, 2, figsize=(10, 7))
    ax = axes[0][0]
    for key, label, style in (
        ("apply_to_job", "apply→Job", "o-"),
        ("apply_to_status", "apply→status", "s-"),
        ("after_drain_apply_to_job", "apply→Job after drain", "^--"),
    ):
        ax.plot(n, [x[key].get("p99") for x in results], style, label=f"{label} p99")
    ax.plot(n, [x["apply_to_job"].get("p50") for x in results], "o:", label="apply→Job p50")
    ax.axhline(TARGET_P99_SECONDS, color="grey", lw=0.8, ls="--")
    ax.set(title="latency", ylabel="seconds", xlabel="N")
    ax.legend(fontsize=7)
    ax = axes[0][1]
    ax.plot(n, [x["rss_peak_bytes"] / 2**20 for x in results], "o-", label="peak")
    ax.plot(n, [x["rss_idle_bytes"] / 2**20 for x in results], "s--", label="idle")
    ax.axhline(TARGET_RSS_BYTES / 2**20, color="grey", lw=0.8, ls="--")
    ax.set(title="operator RSS", ylabel="MiB", xlabel="N", ylim=(0, None))
    ax.legend(fontsize=7)
    ax = axes[1][0]
    ax.plot(n, [1000 * x["cpu_seconds_per_job"] for x in results], "o-")
    ax.set(title="operator CPU per job", ylabel="ms", xlabel="N", ylim=(0, None))
    ax = axes[1][1]
    ax.plot(n, [x["operator_writes_per_job"] for x in results], "o-", label="operator")
    ax.plot(n, [x["cluster_writes_per_job"] for x in results], "s--", label="whole cluster")
    ax.axhline(TARGET_WRITES_PER_JOB, color="grey", lw=0.8, ls="--")
    ax.set(title="API writes per job", xlabel="N", ylim=(0, None))
    ax.legend(fontsize=7)
    for row in axes:
        for a in row:
            a.set_xscale("log")
            a.set_xticks(n, [str(x) for x in n])
    fig.tight_layout()
    fig.savefig(path, dpi=110)


# -------------------------------------------------------------------------------------- main


@contextlib.contextmanager
def _workdir(path: pathlib.Path | None) -> Iterator[pathlib.Path]:
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    # Short and under /tmp: the local cluster keeps sockets and pod directories under it.
    with tempfile.TemporaryDirectory(prefix="kb-", dir="/tmp") as tmp:
        yield pathlib.Path(tmp)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller N, fewer steps and repeats (< 15 min on 2 cores)")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS, help="where results.{json,md} and scale.png go")
    parser.add_argument("--workdir", type=pathlib.Path, help="keep models, data, logs and cluster state here")
    parser.add_argument("--preset", help="trainer model shape (see benchmarks.trainer_throughput.PRESETS)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, help="torch threads per trainer worker (default: torch's choice)")
    parser.add_argument("--batch-size", type=int, help="trainer micro-batch size (default: the preset's)")
    args = parser.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    _quiet()
    from benchmarks import artifact_size, operator_scale, trainer_throughput

    args.out.mkdir(parents=True, exist_ok=True)
    previous = args.out / "results.json"
    results: dict[str, Any] = json.loads(previous.read_text()) if previous.exists() and len(only) < 3 else {}
    for section in only:
        results.get("errors", {}).pop(section, None)
    results.update(
        {
            "command": " ".join(["python -m benchmarks.run", *(argv if argv is not None else sys.argv[1:])]),
            "quick": args.quick,
            "machine": machine(),
            "load_average": {"start": round(os.getloadavg()[0], 2)},
        }
    )
    started = time.monotonic()
    failed = []

    def stamp(section: str, since: float) -> None:
        results[section]["meta"] = {
            "command": results["command"],
            "quick": args.quick,
            "finished": _now(),
            "minutes": (time.monotonic() - since) / 60,
            "commit": results["machine"]["commit"],
        }

    with _workdir(args.workdir) as workdir:
        model_dir = None
        if "trainer" in only:
            since = time.monotonic()
            results["trainer"] = trainer_throughput.run(
                quick=args.quick,
                workdir=workdir / "trainer",
                preset_name=args.preset,
                device=args.device,
                threads=args.threads,
                batch_size=args.batch_size,
                log=log,
            )
            stamp("trainer", since)
            model_dir = workdir / "trainer" / "model"
            if not results["trainer"]["complete"]:
                failed.append("trainer")
        if "operator" in only:
            since = time.monotonic()
            try:
                results["operator"] = operator_scale.run(quick=args.quick, workdir=workdir / "operator", log=log)
                stamp("operator", since)
            except Exception as exc:
                log(f"operator scale failed: {exc}")
                results.pop("operator", None)
                results.setdefault("errors", {})["operator"] = str(exc)[-2000:]
                failed.append("operator")
        if "artifact" in only:
            since = time.monotonic()
            results["artifact"] = artifact_size.run(
                quick=args.quick, workdir=workdir / "artifact", model_dir=model_dir, log=log
            )
            stamp("artifact", since)
    results["seconds"] = time.monotonic() - started
    results["finished"] = _now()
    results["load_average"]["end"] = round(os.getloadavg()[0], 2)
    (args.out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    if "operator" in results:
        plot(results["operator"], args.out / "scale.png")
    (args.out / "results.md").write_text(markdown(results) + "\n")
    log(f"wrote {args.out / 'results.md'} in {results['seconds'] / 60:.1f} min")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
