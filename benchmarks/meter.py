"""One meter for every side of the trainer benchmarks: per-step real tokens, time, loss and memory.

:func:`install` patches ``transformers.Trainer`` (which the PEFT quick tour and kubeft's trainer both
use) in the process that trains. The baseline workers of :mod:`benchmarks.trainer_throughput` call
it directly. kubeft's trainer runs as a pod runs it, ``python -m kubeft_trainer.launch ... -m
kubeft_trainer``, two processes below the benchmark: :func:`launched_env` puts
``benchmarks/meter_site`` on ``PYTHONPATH``, whose ``sitecustomize`` calls :func:`activate_from_env`
in each trainer process (and only there). That installs the same meter as soon as
``transformers.trainer`` is imported and writes each rank's summary to ``$KUBEFT_BENCH_METER_DIR``
when the process exits. Used by :mod:`benchmarks.trainer_throughput` and :mod:`benchmarks.gpu_check`.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.abc
import importlib.machinery
import itertools
import json
import os
import pathlib
import resource
import sys
import threading
import time
from collections.abc import Sequence
from types import ModuleType
from typing import Any

METER_DIR_ENV = "KUBEFT_BENCH_METER_DIR"
SKIP_STEPS_ENV = "KUBEFT_BENCH_SKIP_STEPS"
SITE_DIR = pathlib.Path(__file__).resolve().parent / "meter_site"
TRAINER_MODULE = "kubeft_trainer"


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
        self.torch_threads = 0
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

            # What this process computes with: `accelerate launch` sets OMP_NUM_THREADS for its child.
            self.torch_threads = torch.get_num_threads()
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
            "torch_threads": self.torch_threads,
            "max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        }


def _synchronize() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.synchronize()


def install(meter: Meter, trainer_cls: Any = None) -> None:
    """Patch `transformers.Trainer` (and so every subclass that does not override these) to report to `meter`.

    `trainer_cls` is the class when the caller already holds it: the import hook of
    :func:`activate_from_env` runs while `transformers.trainer` is still being imported.
    """
    import transformers.trainer_callback

    if trainer_cls is None:
        import transformers

        trainer_cls = transformers.Trainer
    original_init = trainer_cls.__init__
    original_step = trainer_cls.training_step
    original_evaluate = trainer_cls.evaluate

    class Callback(transformers.trainer_callback.TrainerCallback):
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

    trainer_cls.__init__ = init
    trainer_cls.training_step = training_step
    trainer_cls.evaluate = evaluate


def rank_file(directory: pathlib.Path, rank: int) -> pathlib.Path:
    return directory / f"rank-{rank}.json"


def launched_env(directory: pathlib.Path, *, skip_steps: int) -> dict[str, str]:
    """Environment entries that make every trainer process started under them report to `directory`."""
    path = [str(SITE_DIR), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {METER_DIR_ENV: str(directory), SKIP_STEPS_ENV: str(skip_steps), "PYTHONPATH": os.pathsep.join(path)}


def is_trainer_process(argv: Sequence[str]) -> bool:
    """`python [-u] -m kubeft_trainer ...` (`sys.orig_argv`): the trainer itself. Not its launcher nor
    accelerate's, whose own arguments end in `-m kubeft_trainer` too: only the interpreter's `-m` counts."""
    args = iter(argv[1:])
    for arg in args:
        if arg == "-m":
            return next(args, None) == TRAINER_MODULE
        if arg in ("-X", "-W"):
            next(args, None)
        elif not arg.startswith("-") or arg == "-c":
            return False
    return False


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs `then(module)` right after `name` is executed, wherever and whenever it is first imported."""

    def __init__(self, name: str, then: Any) -> None:
        self.name, self.then = name, then

    def find_spec(self, fullname: str, path: Any, target: ModuleType | None = None) -> Any:
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or spec.loader is None:
            return spec
        loader, then = spec.loader, self.then
        original = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            original(module)
            then(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def activate_from_env() -> None:
    """In a trainer process started with :func:`launched_env`: meter its Trainer, write the summary at exit."""
    directory = os.environ.get(METER_DIR_ENV)
    if not directory or not is_trainer_process(sys.orig_argv):
        return
    meter = Meter()
    skip_steps = int(os.environ.get(SKIP_STEPS_ENV) or 3)
    out = rank_file(pathlib.Path(directory), int(os.environ.get("RANK") or 0))
    sys.meta_path.insert(0, _AfterImport("transformers.trainer", lambda module: install(meter, module.Trainer)))

    def write() -> None:
        try:
            result = meter.summary(skip_steps=skip_steps)
        except Exception as exc:  # the benchmark reports it; the trainer's own exit code stands
            result = {"error": f"{type(exc).__name__}: {exc}"}
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2))

    atexit.register(write)
