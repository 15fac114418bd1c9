"""Trainer throughput: kubeft's trainer against the PEFT quick-tour recipe, same model, data and hyperparameters.

The baseline is what the PEFT quick tour teaches: ``AutoModelForCausalLM`` + ``LoraConfig`` +
``get_peft_model`` + ``Trainer`` with dynamically padded batches (``DataCollatorForLanguageModeling``)
and default ``TrainingArguments`` (bf16 where the GPU has it). kubeft's side is the trainer run the
way users run it, ``python -m kubeft_trainer --config FILE``, with its defaults: only the model,
the data and the hyperparameters both sides share are written into the config file.

Both run in fresh worker processes (``--worker SPEC``), alternating baseline/kubeft/kubeft/baseline
so that drift of a shared machine falls on both equally. Each worker installs the same meter on
``transformers.Trainer`` before anything trains: it counts the real (non-padding) tokens of every
micro-batch, timestamps every optimizer step, takes the time spent in evaluation out, and samples
peak memory. Throughput is real tokens per second over the steps after the first few (compilation
and allocator warm-up), so the two sides are measured with one ruler.

Called by :mod:`benchmarks.run`; ``python -m benchmarks.trainer_throughput --help`` runs it alone.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import json
import math
import os
import pathlib
import random
import resource
import runpy
import subprocess
import sys
import threading
import time
from typing import Any

import yaml

from benchmarks import measures, s3server, workdirs

ROOT = pathlib.Path(__file__).resolve().parents[1]
SIDES = ("baseline", "kubeft")


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

    @property
    def matmul_params(self) -> int:
        return measures.llama_matmul_params(
            hidden=self.hidden,
            layers=self.layers,
            heads=self.heads,
            kv_heads=self.kv_heads,
            intermediate=self.intermediate,
            vocab=self.vocab,
        )


PRESETS = {
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
    """The data and hyperparameters both sides train with."""

    train_records: int
    eval_records: int
    repeats: int
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
    steps = 20 if quick else 48
    return Workload(
        train_records=steps * preset.batch_size,
        eval_records=4 * preset.batch_size,
        repeats=2 if quick else 3,
    )


# ------------------------------------------------------------------------------ model and data


def build_model(path: pathlib.Path, preset: Preset, *, device: str) -> pathlib.Path:
    """A `save_pretrained` Llama-style checkpoint of `preset`'s shape, with the tiny local tokenizer."""
    import torch
    import transformers

    from hack import tiny_models

    tiny_models.build_causal_lm(path)  # the tokenizer (and a throwaway 2-layer model, replaced below)
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    config = transformers.LlamaConfig(
        vocab_size=max(preset.vocab, len(tokenizer)),
        hidden_size=preset.hidden,
        intermediate_size=preset.intermediate,
        num_hidden_layers=preset.layers,
        num_attention_heads=preset.heads,
        num_key_value_heads=preset.kv_heads,
        max_position_embeddings=max(preset.max_length, 1024),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=preset.tie_embeddings,
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = transformers.LlamaForCausalLM(config).to(getattr(torch, preset.dtype))
    for stale in path.glob("*.safetensors*"):
        stale.unlink()
    model.save_pretrained(path)
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


# ------------------------------------------------------------------------------------- meter


class Meter:
    """Per-step tokens, time, loss and memory of whatever `transformers.Trainer` runs in this process."""

    def __init__(self) -> None:
        self.step_ends: list[float] = []
        self.step_compute: list[float] = []
        self.step_real: list[Any] = []
        self.step_total: list[int] = []
        self.step_loss: list[Any] = []
        self.excluded: list[tuple[float, float]] = []
        self.eval_losses: list[float] = []
        self.train_begin = self.train_end = 0.0
        self.peak_rss = 0
        self.rss_at_begin = 0
        self.peak_accelerator = 0
        self._pending_real: list[Any] = []
        self._pending_total = 0
        self._pending_compute = 0.0
        self._pending_loss: list[Any] = []
        self._sampling = threading.Event()

    # -- hooks called from the patched Trainer
    def micro_batch(self, inputs: dict[str, Any], loss: Any, *, seconds: float) -> None:
        self._pending_compute += seconds
        ids = inputs["input_ids"]
        mask = inputs.get("attention_mask")
        # Padding-free batches carry no attention mask: every token of the flattened row is real.
        self._pending_real.append(mask.sum() if mask is not None and mask.dim() == 2 else ids.numel())
        self._pending_total += ids.numel()
        self._pending_loss.append(loss.detach())

    def step_end(self) -> None:
        _synchronize()
        self.step_ends.append(time.perf_counter())
        self.step_real.append(self._pending_real)
        self.step_total.append(self._pending_total)
        self.step_loss.append(self._pending_loss)
        self.step_compute.append(self._pending_compute)
        self._pending_real, self._pending_total, self._pending_loss = [], 0, []
        self._pending_compute = 0.0

    def begin(self) -> None:
        import psutil

        _synchronize()
        self.train_begin = time.perf_counter()
        self.rss_at_begin = psutil.Process().memory_info().rss
        self._sampling.set()
        threading.Thread(target=self._sample_memory, daemon=True).start()
        with contextlib.suppress(ImportError):
            import torch

            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()

    def end(self) -> None:
        _synchronize()
        self.train_end = time.perf_counter()
        self._sampling.clear()
        with contextlib.suppress(ImportError):
            import torch

            if torch.cuda.is_available():
                self.peak_accelerator = int(torch.cuda.max_memory_allocated())

    def _sample_memory(self) -> None:
        import psutil

        proc = psutil.Process()
        while self._sampling.is_set():
            self.peak_rss = max(self.peak_rss, proc.memory_info().rss)
            time.sleep(0.01)

    # -- figures
    def summary(self, *, skip_steps: int) -> dict[str, Any]:
        steps = len(self.step_ends)
        if steps <= skip_steps:
            raise RuntimeError(
                f"the meter saw {steps} optimizer steps in transformers.Trainer, not more than the {skip_steps} "
                "warm-up steps it leaves out; train longer, or the trainer does not use transformers.Trainer"
            )
        real = [int(sum(int(x) for x in step)) for step in self.step_real]
        losses = [float(sum(float(x) for x in step) / len(step)) for step in self.step_loss if step]
        # Each step's wall time, from the end of the step before, less any evaluation inside it.
        step_seconds = [
            b - a - sum(max(0.0, min(b, y) - max(a, x)) for x, y in self.excluded)
            for a, b in itertools.pairwise([self.train_begin, *self.step_ends])
        ]
        window_seconds = sum(step_seconds[skip_steps:])
        window_tokens = sum(real[skip_steps:])
        tail = losses[-max(1, len(losses) // 4) :]
        return {
            "steps": steps,
            "tokens_real": sum(real),
            "tokens_total": sum(self.step_total),
            "padding_ratio": 1 - sum(real) / sum(self.step_total),
            "window_tokens": window_tokens,
            "window_seconds": window_seconds,
            "tokens_per_second": window_tokens / window_seconds,
            "step_seconds": step_seconds,
            # Forward + backward (Trainer.training_step) per step; the rest of a step is data loading,
            # optimizer, logging and callbacks.
            "step_compute_seconds": self.step_compute,
            "overhead_seconds_per_step": (window_seconds - sum(self.step_compute[skip_steps:])) / (steps - skip_steps),
            "step_real_tokens": real,
            "train_loop_seconds": self.train_end - self.train_begin - sum(b - a for a, b in self.excluded),
            "eval_seconds": sum(b - a for a, b in self.excluded),
            "final_train_loss": sum(tail) / len(tail),
            "first_train_loss": losses[0],
            "eval_loss": self.eval_losses[-1] if self.eval_losses else None,
            "peak_rss_bytes": self.peak_rss,
            "rss_at_train_begin_bytes": self.rss_at_begin,
            "peak_accelerator_bytes": self.peak_accelerator,
            "max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        }


def _synchronize() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.synchronize()


def install(meter: Meter) -> None:
    """Patch `transformers.Trainer` (and so every subclass that does not override these) to report to `meter`."""
    import transformers

    trainer_cls = transformers.Trainer
    original_init = trainer_cls.__init__
    original_step = trainer_cls.training_step
    original_evaluate = trainer_cls.evaluate

    class Callback(transformers.TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            meter.begin()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            meter.step_end()

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            meter.end()

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.add_callback(Callback())

    def training_step(self: Any, model: Any, inputs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        _synchronize()
        start = time.perf_counter()
        loss = original_step(self, model, inputs, *args, **kwargs)
        _synchronize()
        meter.micro_batch(inputs, loss, seconds=time.perf_counter() - start)
        return loss

    def evaluate(self: Any, *args: Any, **kwargs: Any) -> dict[str, float]:
        _synchronize()
        start = time.perf_counter()
        metrics: dict[str, float] = original_evaluate(self, *args, **kwargs)
        _synchronize()
        meter.excluded.append((start, time.perf_counter()))
        loss = next((v for k, v in metrics.items() if k.endswith("eval_loss")), None)
        if loss is not None:
            meter.eval_losses.append(float(loss))
        return metrics

    trainer_cls.__init__ = init  # type: ignore[method-assign]
    trainer_cls.training_step = training_step  # type: ignore[method-assign]
    trainer_cls.evaluate = evaluate  # type: ignore[method-assign]


# ------------------------------------------------------------------------------------ workers


def run_baseline(spec: dict[str, Any], meter: Meter) -> dict[str, Any]:
    """The PEFT quick tour, verbatim in spirit: padded batches and default arguments."""
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
    return {"exit_code": 0}


def kubeft_config(spec: dict[str, Any]) -> dict[str, Any]:
    """The TrainerConfig a user would write: shared data and hyperparameters, everything else left to defaults."""
    return {
        "apiVersion": "kubeft.io/v1alpha1",
        "kind": "TrainerConfig",
        "metadata": {"name": "bench", "namespace": "benchmarks"},
        "spec": {
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
            "storage": {"endpoint": spec["s3_endpoint"]},
            "output": {"s3": {"uri": f"s3://{spec['s3_bucket']}/throughput/{pathlib.Path(spec['run_dir']).name}"}},
            "resources": {"gpus": 1 if spec["device"] == "cuda" else 0},
        },
    }


def run_kubeft(spec: dict[str, Any], meter: Meter) -> dict[str, Any]:
    """`python -m kubeft_trainer --config FILE`, in this process so that the meter sees its Trainer."""
    run_dir = pathlib.Path(spec["run_dir"])
    config_file = run_dir / "config.yaml"
    config_file.write_text(yaml.safe_dump(kubeft_config(spec), sort_keys=False))
    termination = run_dir / "termination.json"
    os.environ.update(
        {
            "KUBEFT_WORKDIR": str(run_dir / "work"),
            "KUBEFT_TERMINATION_LOG": str(termination),
            **spec["s3_env"],
        }
    )
    sys.argv = ["kubeft_trainer", "--config", str(config_file)]
    code: int | str | None = 0
    try:
        runpy.run_module("kubeft_trainer", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code
    message = json.loads(termination.read_text()) if termination.exists() else None
    return {"exit_code": code if isinstance(code, int) else 1, "termination": message}


def worker(spec_file: pathlib.Path) -> int:
    spec = json.loads(spec_file.read_text())
    os.environ.update({"HF_HOME": str(pathlib.Path(spec["run_dir"]) / "hf"), "HF_HUB_OFFLINE": "1"})
    if spec.get("threads"):
        import torch

        torch.set_num_threads(spec["threads"])
    meter = Meter()
    install(meter)
    outcome = (run_baseline if spec["side"] == "baseline" else run_kubeft)(spec, meter)
    result = {"side": spec["side"], **outcome}
    if outcome["exit_code"] == 0:
        result.update(meter.summary(skip_steps=spec["skip_steps"]))
    pathlib.Path(spec["result_file"]).write_text(json.dumps(result, indent=2))
    return 0 if outcome["exit_code"] == 0 else 1


# ------------------------------------------------------------------------------- orchestration


def order(repeats: int) -> list[str]:
    """baseline, kubeft, kubeft, baseline, ...: each side goes first as often as second."""
    sides: list[str] = []
    for i in range(repeats):
        sides += list(SIDES if i % 2 == 0 else reversed(SIDES))
    return sides


def _device(requested: str) -> str:
    if requested != "auto":
        return requested
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _launch(spec: dict[str, Any], run_dir: pathlib.Path, log: Any) -> dict[str, Any]:
    run_dir.mkdir(parents=True, exist_ok=True)
    spec = {**spec, "run_dir": str(run_dir), "result_file": str(run_dir / "result.json")}
    spec_file = run_dir / "spec.json"
    spec_file.write_text(json.dumps(spec, indent=2))
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    with (run_dir / "worker.log").open("w") as out:
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.trainer_throughput", "--worker", str(spec_file)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    elapsed = time.perf_counter() - start
    result_file = run_dir / "result.json"
    result = json.loads(result_file.read_text()) if result_file.exists() else {"side": spec["side"], "exit_code": 1}
    result["end_to_end_seconds"] = elapsed
    # 1-minute load average before and after: above the core count, other processes competed for the CPU.
    result["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    if proc.returncode != 0 and result.get("exit_code", 1) == 0:
        result["exit_code"] = proc.returncode
    if result.get("exit_code") != 0:
        tail = (run_dir / "worker.log").read_text().splitlines()[-30:]
        result["error"] = "\n".join(tail)
    log(
        f"  {spec['side']:8s} "
        + (
            f"{result['tokens_per_second']:8.0f} tok/s  peak {result['peak_rss_bytes'] / 2**20:6.0f} MiB  "
            f"loss {result['final_train_loss']:.3f}/{result['eval_loss'] or float('nan'):.3f}  "
            f"{elapsed:5.0f}s"
            if result.get("exit_code") == 0
            else f"FAILED (exit {result.get('exit_code')}); see {run_dir / 'worker.log'}"
        )
    )
    return result


def run(
    *,
    quick: bool,
    workdir: pathlib.Path,
    preset_name: str | None = None,
    device: str = "auto",
    repeats: int | None = None,
    threads: int | None = None,
    batch_size: int | None = None,
    log: Any = print,
) -> dict[str, Any]:
    """Build the model and data, run both sides `repeats` times interleaved, and summarise.

    `threads` fixes torch's intra-op threads in both sides' workers (default: torch's own choice).
    """
    device = _device(device)
    preset_name = preset_name or ("llama-1b" if device == "cuda" else "cpu-small")
    preset = PRESETS[preset_name]
    if batch_size:
        preset = dataclasses.replace(preset, batch_size=batch_size)
    workload = workload_for(quick=quick, preset=preset, device=device)
    if repeats:
        workload = dataclasses.replace(workload, repeats=repeats)
    log(f"trainer throughput: {preset_name} on {device}, {workload.train_records} records, x{workload.repeats}")
    prepared = prepare(workdir, preset, workload, device=device)
    base_spec = {
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
    runs: list[dict[str, Any]] = []
    with s3server.running() as s3:
        base_spec |= {"s3_endpoint": s3.endpoint, "s3_bucket": s3.bucket, "s3_env": s3.env}
        for i, side in enumerate(order(workload.repeats)):
            runs.append(_launch({**base_spec, "side": side}, workdir / f"run-{i:02d}-{side}", log))
    summary = summarise(
        runs, preset_name=preset_name, preset=preset, workload=workload, prepared=prepared, device=device
    )
    return summary | {"threads": threads}


def _pairs(runs: list[dict[str, Any]], key: str) -> list[float]:
    """kubeft/baseline ratios of `key` within each adjacent (baseline, kubeft) pair of runs."""
    out = []
    for a, b in zip(runs[0::2], runs[1::2], strict=False):
        by_side = {r["side"]: r for r in (a, b)}
        if all(by_side.get(s, {}).get("exit_code") == 0 for s in SIDES):
            out.append(measures.ratio(by_side["kubeft"][key], by_side["baseline"][key]))
    return out


def summarise(
    runs: list[dict[str, Any]],
    *,
    preset_name: str,
    preset: Preset,
    workload: Workload,
    prepared: Prepared,
    device: str,
) -> dict[str, Any]:
    s = measures.token_weighted_length(prepared.train_lengths)
    flops_per_token = measures.lora_flops_per_token(
        matmul_params=preset.matmul_params, layers=preset.layers, hidden=preset.hidden, seq_len=s
    )
    sides: dict[str, Any] = {}
    for side in SIDES:
        ok = [r for r in runs if r["side"] == side and r.get("exit_code") == 0]
        if not ok:
            sides[side] = {"runs": 0}
            continue
        same_steps = [r for r in ok if r["step_real_tokens"] == ok[0]["step_real_tokens"]]
        best = measures.best_of_runs_throughput(
            ok[0]["step_real_tokens"], [r["step_seconds"] for r in same_steps], skip=workload.skip_steps
        )
        tps = [r["tokens_per_second"] for r in ok]
        peak = [r["peak_accelerator_bytes"] if device == "cuda" else r["peak_rss_bytes"] for r in ok]
        sides[side] = {
            "runs": len(ok),
            "tokens_per_second": best,
            "tokens_per_second_median_run": measures.median(tps),
            "tokens_per_second_all": tps,
            "spread": measures.relative_spread(tps),
            "peak_memory_bytes": measures.median(peak),
            "end_to_end_seconds": measures.median([r["end_to_end_seconds"] for r in ok]),
            "train_loop_seconds": measures.median([r["train_loop_seconds"] for r in ok]),
            "overhead_seconds_per_step": measures.median([r["overhead_seconds_per_step"] for r in ok]),
            "steps": ok[0]["steps"],
            "padding_ratio": measures.median([r["padding_ratio"] for r in ok]),
            "first_train_loss": measures.median([r["first_train_loss"] for r in ok]),
            "final_train_loss": measures.median([r["final_train_loss"] for r in ok]),
            "eval_loss": measures.median([r["eval_loss"] for r in ok if r["eval_loss"] is not None] or [math.nan]),
            "achieved_tflops": flops_per_token * best / 1e12,
            "max_load_average": max(max(r["load_average"]) for r in ok),
        }
        if device == "cuda":
            sides[side]["mfu"] = measures.mfu(
                flops_per_token=flops_per_token, tokens_per_second=best, peak_flops=measures.H100_BF16_PEAK_FLOPS
            )
    complete = all(sides[s]["runs"] for s in SIDES)
    ratios: dict[str, Any] = {}
    if complete:
        k, b = sides["kubeft"], sides["baseline"]
        pair_ratios = _pairs(runs, "tokens_per_second")
        ratios = {
            "tokens_per_second": measures.ratio(k["tokens_per_second"], b["tokens_per_second"]),
            "tokens_per_second_median_run": measures.ratio(
                k["tokens_per_second_median_run"], b["tokens_per_second_median_run"]
            ),
            "tokens_per_second_pairs": pair_ratios,
            "peak_memory": measures.ratio(k["peak_memory_bytes"], b["peak_memory_bytes"]),
            "end_to_end_seconds": measures.ratio(k["end_to_end_seconds"], b["end_to_end_seconds"]),
            "eval_loss_relative_difference": (k["eval_loss"] - b["eval_loss"]) / b["eval_loss"],
            "final_train_loss_relative_difference": (k["final_train_loss"] - b["final_train_loss"])
            / b["final_train_loss"],
        }
    return {
        "preset": preset_name,
        "device": device,
        "model": dataclasses.asdict(preset) | {"matmul_params": preset.matmul_params},
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
    parser.add_argument("--quick", action="store_true", help="fewer steps and repeats")
    parser.add_argument("--preset", choices=sorted(PRESETS), help="model shape (default: cpu-small, llama-1b on GPU)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--repeats", type=int, help="runs per side")
    parser.add_argument("--threads", type=int, help="torch threads per worker (default: torch's choice)")
    parser.add_argument("--batch-size", type=int, help="micro-batch size (default: the preset's)")
    parser.add_argument("--workdir", type=pathlib.Path, help="keep models, data and worker logs here")
    parser.add_argument("--json", type=pathlib.Path, help="write the summary here")
    parser.add_argument("--worker", type=pathlib.Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.worker)
    with workdirs.workdir(args.workdir) as workdir:
        summary = run(
            quick=args.quick,
            workdir=workdir,
            preset_name=args.preset,
            device=args.device,
            repeats=args.repeats,
            threads=args.threads,
            batch_size=args.batch_size,
        )
    text = json.dumps(summary, indent=2, default=str)
    if args.json:
        args.json.write_text(text)
    print(json.dumps({"sides": summary["sides"], "ratios": summary["ratios"]}, indent=2, default=str))
    return 0 if summary["complete"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
