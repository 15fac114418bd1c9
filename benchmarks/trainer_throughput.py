"""Trainer throughput: kubeft's trainer against the PEFT quick-tour recipe, same model, data and hyperparameters.

Three sides, each in fresh processes:

- ``baseline``: what the PEFT quick tour teaches: ``AutoModelForCausalLM`` + ``LoraConfig`` +
  ``get_peft_model`` + ``Trainer`` with dynamically padded batches (``DataCollatorForLanguageModeling``)
  and default ``TrainingArguments`` (bf16 where the GPU has it);
- ``baseline-grouped``: the same recipe with length-grouped batches (``group_by_length``), the
  one-line change that cuts most padding without leaving the quick tour;
- ``kubeft``: the trainer as its pod runs it (:mod:`benchmarks.pod`): the config file the operator
  renders, the operator's launcher command (``python -m kubeft_trainer.launch --num_processes 1 -m
  kubeft_trainer --config FILE``) and the environment it sets on trainer pods. The spec sets only
  what every side shares (model, data, LoRA settings, epochs, learning rate, batch size, seed).

Runs go in rounds, one run per side each, the order rotating from round to round so that drift of a
shared machine falls on every side alike. Every process installs the same meter on
``transformers.Trainer`` (:mod:`benchmarks.meter`): real (non-padding) tokens per micro-batch,
optimizer-step timestamps, evaluation time taken out, peak memory. Throughput is real tokens per
second over the steps after the first few (warm-up). The headline is the median over rounds of
kubeft's tokens/s divided by the stronger baseline's in the same round; every round's ratio is
reported next to it.

Called by :mod:`benchmarks.run` and :mod:`benchmarks.gpu_check`; ``python -m
benchmarks.trainer_throughput --help`` runs it alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import pathlib
import random
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

from benchmarks import measures, meter, pod, stores, workdirs

ROOT = pathlib.Path(__file__).resolve().parents[1]
BASELINES = ("baseline", "baseline-grouped")
SIDES = (*BASELINES, "kubeft")
SIDE_TITLES = {
    "baseline": "PEFT quick tour (baseline)",
    "baseline-grouped": "quick tour + group_by_length",
    "kubeft": "kubeft trainer (defaults, launcher, pod env)",
}
# The FineTuneJob the kubeft side runs as.
JOB_NAME = "bench"


@dataclasses.dataclass(frozen=True)
class Preset:
    """A Llama-style model shape and the batch that fits it. Weights are random, built locally."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    max_length: int
    batch_size: int
    dtype: str
    tie_embeddings: bool = False

    def llama_config(self) -> dict[str, Any]:
        """The shape as `transformers.LlamaConfig` keyword arguments: config.json's names, which
        kubeft's fit estimate (`api.estimate.Shape.from_config`) reads too."""
        return {
            "vocab_size": self.vocab,
            "hidden_size": self.hidden,
            "intermediate_size": self.intermediate,
            "num_hidden_layers": self.layers,
            "num_attention_heads": self.heads,
            "num_key_value_heads": self.kv_heads,
            "tie_word_embeddings": self.tie_embeddings,
        }

    def _shape(self) -> dict[str, int]:
        return {
            "hidden": self.hidden,
            "layers": self.layers,
            "heads": self.heads,
            "kv_heads": self.kv_heads,
            "intermediate": self.intermediate,
            "vocab": self.vocab,
        }

    @property
    def matmul_params(self) -> int:
        return measures.llama_matmul_params(**self._shape())

    @property
    def params(self) -> int:
        """Every parameter of the model: the N of 6·N·tokens/s."""
        return measures.llama_params(**self._shape(), tie_embeddings=self.tie_embeddings)


PRESETS = {
    # The GPU check's --cpu-smoke shape: the same code path in seconds.
    "cpu-tiny": Preset(
        hidden=64, layers=2, heads=4, kv_heads=2, intermediate=172, vocab=1024, max_length=128, batch_size=4,
        dtype="float32",
    ),
    # Small enough for 2 CPU cores, shaped like the real thing: GQA, SwiGLU, a vocabulary whose LM head
    # is a large share of the matmuls, and a length mix up to 512 tokens.
    "cpu-small": Preset(
        hidden=256, layers=4, heads=8, kv_heads=4, intermediate=688, vocab=8192, max_length=512, batch_size=8,
        dtype="float32",
    ),
    # Llama-3.2-1B's shape at sequence length 4096.
    "llama-1b": Preset(
        hidden=2048, layers=16, heads=32, kv_heads=8, intermediate=8192, vocab=128256, max_length=4096, batch_size=4,
        dtype="bfloat16", tie_embeddings=True,
    ),
    # Llama-3-8B's shape at sequence length 4096, the FIELD-NOTES reference point (12,473 tokens/s, ~41% MFU).
    "llama-8b": Preset(
        hidden=4096, layers=32, heads=32, kv_heads=8, intermediate=14336, vocab=128256, max_length=4096, batch_size=2,
        dtype="bfloat16",
    ),
}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Workload:
    """The data and hyperparameters every side trains with."""

    train_records: int
    eval_records: int
    repeats: int  # rounds: one run of every side each
    # High for LoRA, so that the loss of a random-weight model falls visibly within a short run.
    learning_rate: float = 5e-3
    seed: int = 42
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    # Median record length as a fraction of max_length, and the log-normal spread around it: a long
    # tail of long records among many short ones, the shape of instruction and chat datasets.
    median_fraction: float = 0.2
    length_sigma: float = 0.9
    # Steps left out of the throughput window at the start (warm-up, compilation).
    skip_steps: int = 3


def workload_for(*, quick: bool, preset: Preset, device: str) -> Workload:
    if device == "cuda":
        steps = 30 if quick else 100
        return Workload(train_records=steps * preset.batch_size, eval_records=4 * preset.batch_size, repeats=2)
    # Three sides: quick is 9 runs of about 35 s on 2 cores, full 9 runs of about 75 s.
    steps = 20 if quick else 48
    return Workload(train_records=steps * preset.batch_size, eval_records=4 * preset.batch_size, repeats=3)


# ------------------------------------------------------------------------------ model and data


def build_model(path: pathlib.Path, preset: Preset, *, device: str) -> pathlib.Path:
    """A `save_pretrained` Llama-style checkpoint of `preset`'s shape, with the tiny local tokenizer.

    The weights are created directly in the preset's dtype on `device` (an 8B model in bf16 on a GPU
    takes seconds; in fp32 on the CPU first it would take minutes and twice the memory).
    """
    import torch
    import transformers

    from hack import tiny_models

    tiny_models.build_causal_lm(path)  # the tokenizer (and a throwaway 2-layer model, replaced below)
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    config = transformers.LlamaConfig(
        **{
            **preset.llama_config(),
            "vocab_size": max(preset.vocab, len(tokenizer)),
            "max_position_embeddings": max(preset.max_length, 1024),
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        }
    )
    torch.manual_seed(0)
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, preset.dtype))
    try:
        with torch.device(device):
            model = transformers.LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(default_dtype)
    for stale in path.glob("*.safetensors*"):
        stale.unlink()
    model.save_pretrained(path)
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    return path


def record_lengths(n: int, *, max_length: int, workload: Workload, rng: random.Random) -> list[int]:
    """Target token lengths: log-normal around median_fraction·max_length, clipped to [16, max_length]."""
    median = workload.median_fraction * max_length
    return [
        int(min(max_length, max(16, rng.lognormvariate(math.log(median), workload.length_sigma)))) for _ in range(n)
    ]


def generate_texts(lengths: list[int], *, tokens_per_word: float, rng: random.Random) -> list[str]:
    """Word sequences from a fixed random Markov chain, so there is something to learn and the loss falls."""
    from hack import tiny_models

    words = sorted({w for line in tiny_models.corpus() for w in line.split() if w.isalpha()})
    chain = {w: rng.sample(words, 4) for w in words}
    texts = []
    for target in lengths:
        word = rng.choice(words)
        out = [word]
        for _ in range(max(1, round(target / tokens_per_word)) - 1):
            word = rng.choice(chain[word]) if rng.random() < 0.9 else rng.choice(words)
            out.append(word)
        texts.append(" ".join(out))
    return texts


@dataclasses.dataclass(frozen=True)
class Prepared:
    model_dir: pathlib.Path
    train_file: pathlib.Path
    eval_file: pathlib.Path
    train_lengths: list[int]


def prepare(workdir: pathlib.Path, preset: Preset, workload: Workload, *, device: str) -> Prepared:
    """Build the model and write train.jsonl / validation.jsonl; measure their token lengths."""
    import transformers

    model_dir = build_model(workdir / "model", preset, device=device)
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    rng = random.Random(workload.seed)
    probe = generate_texts([400], tokens_per_word=1.0, rng=random.Random(0))[0]
    tokens_per_word = len(tokenizer(probe)["input_ids"]) / len(probe.split())
    files = {}
    lengths: dict[str, list[int]] = {}
    for split, n in (("train", workload.train_records), ("validation", workload.eval_records)):
        texts = generate_texts(
            record_lengths(n, max_length=preset.max_length, workload=workload, rng=rng),
            tokens_per_word=tokens_per_word,
            rng=rng,
        )
        files[split] = workdir / f"{split}.jsonl"
        files[split].write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
        ids = tokenizer(texts, truncation=True, max_length=preset.max_length)["input_ids"]
        lengths[split] = [len(x) for x in ids]
    return Prepared(
        model_dir=model_dir, train_file=files["train"], eval_file=files["validation"], train_lengths=lengths["train"]
    )


# ------------------------------------------------------------------------------------ baselines


def length_grouping() -> dict[str, Any]:
    """TrainingArguments for length-grouped batches: `group_by_length=True` where transformers has it,
    else its successor `train_sampling_strategy="group_by_length"` (the same LengthGroupedSampler)."""
    import transformers

    names = {field.name for field in dataclasses.fields(transformers.TrainingArguments)}
    if "group_by_length" in names:
        return {"group_by_length": True}
    return {"train_sampling_strategy": "group_by_length"}


def run_baseline(spec: dict[str, Any]) -> None:
    """The PEFT quick tour, verbatim in spirit: padded batches and default arguments (optionally length-grouped)."""
    import datasets
    import peft
    import torch
    import transformers

    out = pathlib.Path(spec["run_dir"]) / "baseline"
    tokenizer = transformers.AutoTokenizer.from_pretrained(spec["model_dir"])
    model = transformers.AutoModelForCausalLM.from_pretrained(spec["model_dir"])
    lora = peft.LoraConfig(
        task_type=peft.TaskType.CAUSAL_LM,
        r=spec["lora_r"],
        lora_alpha=spec["lora_alpha"],
        lora_dropout=spec["lora_dropout"],
        target_modules=list(spec["target_modules"]),
    )
    model = peft.get_peft_model(model, lora)  # type: ignore[assignment]  # the PEFT wrapper of the same model
    raw = datasets.load_dataset("json", data_files={"train": spec["train_file"], "validation": spec["eval_file"]})
    tokenized = raw.map(
        lambda batch: tokenizer(batch["text"], truncation=True, max_length=spec["max_length"]),
        batched=True,
        remove_columns=["text"],
    )
    args = transformers.TrainingArguments(
        output_dir=str(out),
        learning_rate=spec["learning_rate"],
        per_device_train_batch_size=spec["batch_size"],
        per_device_eval_batch_size=spec["batch_size"],
        num_train_epochs=1,
        seed=spec["seed"],
        eval_strategy="epoch",
        save_strategy="epoch",
        load_best_model_at_end=True,
        bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
        **(length_grouping() if spec["side"] == "baseline-grouped" else {}),
    )
    trainer = transformers.Trainer(
        model=model,
        args=args,
        train_dataset=tokenized["train"],
        eval_dataset=tokenized["validation"],
        processing_class=tokenizer,
        data_collator=transformers.DataCollatorForLanguageModeling(tokenizer=tokenizer, mlm=False),
    )
    trainer.train()
    trainer.save_model(str(out / "adapter"))


def worker(spec_file: pathlib.Path) -> int:
    """One baseline run in this process, metered; its summary goes to the meter's rank-0 file."""
    spec = json.loads(spec_file.read_text())
    if spec.get("threads"):
        import torch

        torch.set_num_threads(spec["threads"])
    gauge = meter.Meter()
    meter.install(gauge)
    run_baseline(spec)
    result = gauge.summary(skip_steps=spec["skip_steps"])
    out = meter.rank_file(pathlib.Path(spec["run_dir"]) / "meter", 0)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    return 0


# ------------------------------------------------------------------------------------ kubeft


def kubeft_spec(spec: dict[str, Any], store: stores.Store) -> dict[str, Any]:
    """The FineTuneJob spec a user would write: shared data and hyperparameters, everything else left to defaults."""
    doc: dict[str, Any] = {
        "model": {"source": spec["model_dir"]},
        "dataset": {
            "source": spec["train_file"],
            "format": "jsonl",
            "fields": {"text": "text"},
            "validationSource": spec["eval_file"],
            "maxLength": spec["max_length"],
        },
        "task": "CAUSAL_LM",
        "method": {
            "type": "lora",
            "lora": {
                "r": spec["lora_r"],
                "alpha": spec["lora_alpha"],
                "dropout": spec["lora_dropout"],
                "targetModules": list(spec["target_modules"]),
            },
        },
        "training": {
            "epochs": 1,
            "learningRate": spec["learning_rate"],
            "batchSize": spec["batch_size"],
            "seed": spec["seed"],
        },
        "resources": {"gpus": spec.get("gpus", 1 if spec["device"] == "cuda" else 0)},
        "output": store.output(spec["output_name"]),
    }
    # The GPU check's other runs: another method (qlora) and a quantized base.
    if "method" in spec:
        doc["method"] = spec["method"]
    if "quantization" in spec:
        doc["model"]["quantization"] = spec["quantization"]
    if "parallelism" in spec:  # the GPU check's FSDP step
        doc["training"]["parallelism"] = spec["parallelism"]
    if store.storage is not None:
        doc["storage"] = store.storage
    return doc


def _run_process(
    argv: list[str], *, env: dict[str, str], run_dir: pathlib.Path, timeout: float | None
) -> tuple[int, float, str | None]:
    """(exit code, seconds, error) of one process, its output in run_dir/worker.log; 124 when it timed out."""
    start = time.perf_counter()
    with (run_dir / "worker.log").open("w") as out:
        try:
            code = subprocess.run(
                argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, check=False, timeout=timeout
            ).returncode
            error = None
        except subprocess.TimeoutExpired:
            code, error = 124, f"timed out after {timeout:.0f} s"
    return code, time.perf_counter() - start, error


def launch(
    spec: dict[str, Any], run_dir: pathlib.Path, *, store: stores.Store, timeout: float | None = None
) -> dict[str, Any]:
    """One metered run of `spec["side"]` in fresh processes; the meter's figures, exit code and timings.

    kubeft's side exports to `store` under `spec["output_name"]` (default: the run directory's name).
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    spec = {"output_name": run_dir.name, **spec, "run_dir": str(run_dir)}
    meter_dir = run_dir / "meter"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if spec.get("threads"):
        env["OMP_NUM_THREADS"] = str(spec["threads"])
    termination: dict[str, Any] | None = None
    if spec["side"] == "kubeft":
        rendered = pod.render(kubeft_spec(spec, store), name=JOB_NAME, run_dir=run_dir, secrets=store.secrets)
        argv = rendered.argv
        env = {**rendered.env, **{k: v for k, v in env.items() if k in ("HF_HUB_OFFLINE", "OMP_NUM_THREADS")}}
        env |= store.env
        env |= meter.launched_env(meter_dir, skip_steps=spec["skip_steps"])
        termination_log = rendered.termination_log
    else:
        spec_file = run_dir / "spec.json"
        spec_file.write_text(json.dumps(spec, indent=2))
        argv = [sys.executable, "-m", "benchmarks.trainer_throughput", "--worker", str(spec_file)]
        env["HF_HOME"] = str(run_dir / "hf")
        termination_log = None
    load_before = os.getloadavg()[0]
    code, elapsed, error = _run_process(argv, env=env, run_dir=run_dir, timeout=timeout)
    result: dict[str, Any] = {"side": spec["side"], "round": spec.get("round", 0), "exit_code": code}
    ranks = sorted(meter_dir.glob("rank-*.json"))
    figures = [json.loads(p.read_text()) for p in ranks]
    if termination_log is not None and termination_log.exists():
        termination = json.loads(termination_log.read_text())
        result["termination"] = termination
    if figures and "error" not in figures[0]:
        result.update(figures[0])
        result["ranks"] = len(figures)
        # Data parallel: every rank trains its own micro-batches in the same steps.
        result["tokens_per_second_all_ranks"] = sum(f.get("tokens_per_second", 0.0) for f in figures)
    elif code == 0:
        result["exit_code"] = 1
        error = figures[0]["error"] if figures else "the meter wrote nothing: transformers.Trainer never ran"
    result["end_to_end_seconds"] = elapsed
    # 1-minute load average before and after: above the core count, other processes competed for the CPU.
    result["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    if result["exit_code"] != 0:
        tail = (run_dir / "worker.log").read_text(errors="replace").splitlines()[-30:]
        result["error"] = "\n".join([*([error] if error else []), *tail])
    return result


def describe(result: dict[str, Any], run_dir: pathlib.Path) -> str:
    if result.get("exit_code") != 0:
        return f"{result['side']:16s} FAILED (exit {result.get('exit_code')}); see {run_dir / 'worker.log'}"
    peak = result["peak_accelerator_bytes"] or result["peak_rss_bytes"]
    return (
        f"{result['side']:16s} {result['tokens_per_second']:8.0f} tok/s  peak {peak / 2**20:6.0f} MiB  "
        f"loss {result['final_train_loss']:.3f}/{result['eval_loss'] or float('nan'):.3f}  "
        f"{result['end_to_end_seconds']:5.0f}s"
    )


# ------------------------------------------------------------------------------- orchestration


def order(repeats: int, sides: Sequence[str] = SIDES) -> list[tuple[int, str]]:
    """(round, side): each round runs every side once, rotated by one place per round (b g k, g k b, k b g, ...),
    so that over len(sides) rounds every side runs in every position once."""
    n = len(sides)
    return [(r, sides[(r + i) % n]) for r in range(repeats) for i in range(n)]


def _device(requested: str) -> str:
    if requested != "auto":
        return requested
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def device_name(device: str) -> str | None:
    if device != "cuda":
        return None
    import torch

    return str(torch.cuda.get_device_name(0))


def base_spec(
    prepared: Prepared, preset: Preset, workload: Workload, *, device: str, threads: int | None = None
) -> dict[str, Any]:
    """What every run of every side shares."""
    return {
        "device": device,
        "model_dir": str(prepared.model_dir),
        "train_file": str(prepared.train_file),
        "eval_file": str(prepared.eval_file),
        "max_length": preset.max_length,
        "batch_size": preset.batch_size,
        "learning_rate": workload.learning_rate,
        "seed": workload.seed,
        "lora_r": workload.lora_r,
        "lora_alpha": workload.lora_alpha,
        "lora_dropout": workload.lora_dropout,
        "target_modules": list(workload.target_modules),
        "skip_steps": workload.skip_steps,
        "threads": threads,
    }


def run(
    *,
    quick: bool,
    workdir: pathlib.Path,
    preset_name: str | None = None,
    device: str = "auto",
    repeats: int | None = None,
    threads: int | None = None,
    batch_size: int | None = None,
    sides: Sequence[str] = SIDES,
    store: str = "auto",
    log: Any = print,
) -> dict[str, Any]:
    """Build the model and data, run every side `repeats` rounds, and summarise.

    `threads` fixes torch's intra-op threads in every side's processes (default: torch's own choice).
    """
    device = _device(device)
    preset_name = preset_name or ("llama-1b" if device == "cuda" else "cpu-small")
    preset = PRESETS[preset_name]
    if batch_size:
        preset = dataclasses.replace(preset, batch_size=batch_size)
    workload = workload_for(quick=quick, preset=preset, device=device)
    if repeats:
        workload = dataclasses.replace(workload, repeats=repeats)
    log(
        f"trainer throughput: {preset_name} on {device}, {workload.train_records} records, "
        f"{workload.repeats} rounds of {', '.join(sides)}"
    )
    prepared = prepare(workdir, preset, workload, device=device)
    with stores.running(store, workdir=workdir) as output:
        log(f"  kubeft exports to {output.description}")
        store = output.kind
        runs = run_sides(
            base_spec(prepared, preset, workload, device=device, threads=threads),
            workdir=workdir,
            sides=sides,
            repeats=workload.repeats,
            store=output,
            log=log,
        )
    summary = summarise(
        runs,
        preset_name=preset_name,
        preset=preset,
        workload=workload,
        prepared=prepared,
        device=device,
        device_name=device_name(device),
    )
    return summary | {"threads": threads, "store": store}


def run_sides(
    spec: dict[str, Any],
    *,
    workdir: pathlib.Path,
    sides: Sequence[str],
    repeats: int,
    store: stores.Store | None = None,
    log: Any = print,
    deadline: float | None = None,
) -> list[dict[str, Any]]:
    """Every side `repeats` times in rotating rounds. kubeft exports to `store`, by default a SeaweedFS of its
    own; `deadline` (time.monotonic()) bounds every run, so that a hung run cannot eat a time budget."""
    if store is None:
        with stores.running("s3", workdir=workdir) as s3:
            return run_sides(spec, workdir=workdir, sides=sides, repeats=repeats, store=s3, log=log, deadline=deadline)
    runs: list[dict[str, Any]] = []
    for i, (round_, side) in enumerate(order(repeats, sides)):
        run_dir = workdir / f"run-{i:02d}-{side}"
        timeout = None if deadline is None else max(1.0, deadline - time.monotonic())
        result = launch({**spec, "side": side, "round": round_}, run_dir, store=store, timeout=timeout)
        log(f"  round {round_} {describe(result, run_dir)}")
        runs.append(result)
    return runs


def round_ratios(runs: list[dict[str, Any]], key: str, *, baseline: str) -> list[float]:
    """kubeft's `key` over `baseline`'s within each round in which both ran to completion."""
    by_round: dict[int, dict[str, dict[str, Any]]] = {}
    for r in runs:
        if r.get("exit_code") == 0:
            by_round.setdefault(r["round"], {})[r["side"]] = r
    return [
        measures.ratio(sides["kubeft"][key], sides[baseline][key])
        for _, sides in sorted(by_round.items())
        if "kubeft" in sides and baseline in sides
    ]


def _side_summary(
    ok: list[dict[str, Any]],
    *,
    device: str,
    skip_steps: int,
    flops_per_token: float,
    preset: Preset,
    peak: float | None,
) -> dict[str, Any]:
    same_steps = [r for r in ok if r["step_real_tokens"] == ok[0]["step_real_tokens"]]
    fastest = measures.best_of_runs_throughput(
        ok[0]["step_real_tokens"], [r["step_seconds"] for r in same_steps], skip=skip_steps
    )
    tps = [r["tokens_per_second"] for r in ok]
    median_tps = measures.median(tps)
    memory = [r["peak_accelerator_bytes"] if device == "cuda" else r["peak_rss_bytes"] for r in ok]
    out = {
        "runs": len(ok),
        "tokens_per_second": median_tps,
        "tokens_per_second_all": tps,
        "tokens_per_second_fastest_steps": fastest,
        "spread": measures.relative_spread(tps),
        "peak_memory_bytes": measures.median(memory),
        "end_to_end_seconds": measures.median([r["end_to_end_seconds"] for r in ok]),
        "train_loop_seconds": measures.median([r["train_loop_seconds"] for r in ok]),
        "overhead_seconds_per_step": measures.median([r["overhead_seconds_per_step"] for r in ok]),
        "steps": ok[0]["steps"],
        "padding_ratio": measures.median([r["padding_ratio"] for r in ok]),
        "first_train_loss": measures.median([r["first_train_loss"] for r in ok]),
        "final_train_loss": measures.median([r["final_train_loss"] for r in ok]),
        "eval_loss": measures.median([r["eval_loss"] for r in ok if r["eval_loss"] is not None] or [math.nan]),
        "achieved_tflops": flops_per_token * median_tps / 1e12,
        "max_load_average": max(max(r["load_average"]) for r in ok),
        "torch_threads": sorted({r.get("torch_threads") for r in ok}, key=str),
    }
    if peak is not None:
        out["mfu"] = measures.mfu(flops_per_token=flops_per_token, tokens_per_second=median_tps, peak_flops=peak)
        out["mfu_6n"] = measures.mfu(flops_per_token=6 * preset.params, tokens_per_second=median_tps, peak_flops=peak)
    return out


def summarise(
    runs: list[dict[str, Any]],
    *,
    preset_name: str,
    preset: Preset,
    workload: Workload,
    prepared: Prepared,
    device: str,
    device_name: str | None = None,
) -> dict[str, Any]:
    s = measures.token_weighted_length(prepared.train_lengths)
    flops_per_token = measures.lora_flops_per_token(
        matmul_params=preset.matmul_params, layers=preset.layers, hidden=preset.hidden, seq_len=s
    )
    found = measures.peak_bf16_flops(device_name) if device_name else None
    peak = found[1] if found else None
    present = [side for side in SIDES if any(r["side"] == side for r in runs)]
    sides: dict[str, Any] = {}
    for side in present:
        ok = [r for r in runs if r["side"] == side and r.get("exit_code") == 0]
        sides[side] = (
            _side_summary(
                ok,
                device=device,
                skip_steps=workload.skip_steps,
                flops_per_token=flops_per_token,
                preset=preset,
                peak=peak,
            )
            if ok
            else {"runs": 0}
        )
    baselines = [b for b in BASELINES if sides.get(b, {}).get("runs")]
    pairs = {b: round_ratios(runs, "tokens_per_second", baseline=b) for b in baselines}
    complete = bool(sides.get("kubeft", {}).get("runs")) and all(sides[s]["runs"] for s in present)
    complete = complete and all(pairs.values())
    ratios: dict[str, Any] = {}
    if complete:
        # The stronger baseline: the higher median tokens/s; kubeft's gain is claimed against it alone.
        stronger = max(baselines, key=lambda b: sides[b]["tokens_per_second"])
        k, b = sides["kubeft"], sides[stronger]
        plain = sides[baselines[0]]  # the quick tour itself: kubeft trains the same batches in the same order
        ratios = {
            "stronger_baseline": stronger,
            "tokens_per_second": measures.median(pairs[stronger]),
            "tokens_per_second_pairs": pairs[stronger],
            "tokens_per_second_vs": {name: measures.median(p) for name, p in pairs.items()},
            "tokens_per_second_pairs_vs": pairs,
            "tokens_per_second_fastest_steps": measures.ratio(
                k["tokens_per_second_fastest_steps"], b["tokens_per_second_fastest_steps"]
            ),
            "peak_memory": measures.ratio(k["peak_memory_bytes"], b["peak_memory_bytes"]),
            "end_to_end_seconds": measures.ratio(k["end_to_end_seconds"], b["end_to_end_seconds"]),
            "loss_baseline": baselines[0],
            "eval_loss_relative_difference": (k["eval_loss"] - plain["eval_loss"]) / plain["eval_loss"],
            "final_train_loss_relative_difference": (k["final_train_loss"] - plain["final_train_loss"])
            / plain["final_train_loss"],
        }
    return {
        "preset": preset_name,
        "device": device,
        "device_name": device_name,
        "bf16_peak_flops": peak,
        "bf16_peak_source": found[0] if found else None,
        "sides_run": present,
        "model": dataclasses.asdict(preset) | {"matmul_params": preset.matmul_params, "params": preset.params},
        "workload": dataclasses.asdict(workload),
        "data": {
            "train_records": len(prepared.train_lengths),
            "train_tokens": sum(prepared.train_lengths),
            "mean_length": sum(prepared.train_lengths) / len(prepared.train_lengths),
            "max_length": max(prepared.train_lengths),
            "token_weighted_length": s,
            "padding_ratio_padded_batches": measures.padding_ratio(
                prepared.train_lengths, batch_size=preset.batch_size
            ),
        },
        "flops_per_token": flops_per_token,
        "complete": complete,
        "sides": sides,
        "ratios": ratios,
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps")
    parser.add_argument("--preset", choices=sorted(PRESETS), help="model shape (default: cpu-small, llama-1b on GPU)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--repeats", type=int, help="rounds (one run of every side each)")
    parser.add_argument("--sides", default=",".join(SIDES), help=f"comma-separated subset of {','.join(SIDES)}")
    parser.add_argument(
        "--store", default="auto", choices=stores.KINDS, help="where kubeft exports (benchmarks/stores.py)"
    )
    parser.add_argument("--threads", type=int, help="torch threads per process (default: torch's choice)")
    parser.add_argument("--batch-size", type=int, help="micro-batch size (default: the preset's)")
    parser.add_argument("--workdir", type=pathlib.Path, help="keep models, data and worker logs here")
    parser.add_argument("--json", type=pathlib.Path, help="write the summary here")
    parser.add_argument("--worker", type=pathlib.Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.worker)
    sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    if "kubeft" not in sides or not set(sides) & set(BASELINES) or set(sides) - set(SIDES):
        parser.error(f"--sides needs kubeft and at least one of {', '.join(BASELINES)}")
    with workdirs.workdir(args.workdir) as workdir:
        summary = run(
            quick=args.quick,
            workdir=workdir,
            preset_name=args.preset,
            device=args.device,
            repeats=args.repeats,
            threads=args.threads,
            batch_size=args.batch_size,
            sides=sides,
            store=args.store,
        )
    text = json.dumps(summary, indent=2, default=str)
    if args.json:
        args.json.write_text(text)
    print(json.dumps({"sides": summary["sides"], "ratios": summary["ratios"]}, indent=2, default=str))
    return 0 if summary["complete"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
