"""Pure arithmetic behind the benchmark figures: percentiles, padding, LoRA FLOPs and MFU, ratios.

No torch, no I/O, so the unit tests in tests/unit/benchmarks pin every formula cheaply. Called by
:mod:`benchmarks.trainer_throughput`, :mod:`benchmarks.operator_scale` and :mod:`benchmarks.run`.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence

# Dense bf16 peak of one H100 SXM, the denominator of MFU in docs/performance.md and FIELD-NOTES.
H100_BF16_PEAK_FLOPS = 989e12
# Dense (no 2:4 sparsity) bf16 tensor-core peak of one GPU, FLOP/s, from NVIDIA's data sheets, keyed by a
# part of the name torch.cuda.get_device_name() reports ("NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB").
# The first key found in the name wins, so each variant precedes its family ("H100 PCIe" before "H100",
# "L40S" and "L40" before "L4"). A GPU not listed has an unknown peak and no MFU.
BF16_PEAK_FLOPS: tuple[tuple[str, float], ...] = (
    ("GH200", 989e12),
    ("H200 NVL", 835e12),
    ("H200", 989e12),
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", H100_BF16_PEAK_FLOPS),
    ("H800", 989e12),
    ("B200", 2250e12),
    ("A100", 312e12),
    ("A800", 312e12),
    ("L40S", 362e12),
    ("L40", 181e12),
    ("L4", 121e12),
)


def percentile(values: Iterable[float], q: float) -> float:
    """The `q`-th percentile (0..100) with linear interpolation between the closest ranks (numpy's default)."""
    data = sorted(values)
    if not data:
        raise ValueError("percentile of an empty sample")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be within 0..100, got {q}")
    rank = (len(data) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (rank - low)


def padding_ratio(lengths: Sequence[int], *, batch_size: int) -> float:
    """Share of the tokens in padded batches that are padding, when consecutive `lengths` form the batches.

    Each batch is padded to its longest member (dynamic padding, as `DataCollatorWithPadding` does).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    real = padded = 0
    for start in range(0, len(lengths), batch_size):
        batch = lengths[start : start + batch_size]
        real += sum(batch)
        padded += max(batch) * len(batch)
    return 0.0 if padded == 0 else 1 - real / padded


def token_weighted_length(lengths: Iterable[int]) -> float:
    """Mean sequence length seen by a token: sum(len^2) / sum(len).

    Attention work per token grows with the length of the sequence that token is in, so this is
    the `s` to put in the FLOPs formula for a mix of lengths trained without cross-sequence attention.
    """
    data = list(lengths)
    total = sum(data)
    if total == 0:
        raise ValueError("no tokens")
    return sum(n * n for n in data) / total


def llama_matmul_params(
    *, hidden: int, layers: int, heads: int, kv_heads: int, intermediate: int, vocab: int, head_dim: int | None = None
) -> int:
    """Parameters inside matmuls of a Llama-style decoder: attention and SwiGLU projections plus the LM head.

    The input embedding is a lookup, not a matmul, so it is left out (also when it is tied to the head).
    """
    head_dim = head_dim or hidden // heads
    attention = hidden * heads * head_dim * 2 + hidden * kv_heads * head_dim * 2
    mlp = 3 * hidden * intermediate
    return layers * (attention + mlp) + hidden * vocab


def llama_params(
    *, hidden: int, layers: int, heads: int, kv_heads: int, intermediate: int, vocab: int, tie_embeddings: bool
) -> int:
    """Every parameter of a Llama-style decoder: the matmuls, the input embedding (unless tied to the
    LM head) and the RMSNorm weights (two per block and a final one). The N of "6·N·tokens/s"."""
    matmul = llama_matmul_params(
        hidden=hidden, layers=layers, heads=heads, kv_heads=kv_heads, intermediate=intermediate, vocab=vocab
    )
    embedding = 0 if tie_embeddings else vocab * hidden
    return matmul + embedding + (2 * layers + 1) * hidden


def lora_flops_per_token(*, matmul_params: int, layers: int, hidden: int, seq_len: float) -> float:
    """Training FLOPs per token with a frozen base: 4·N_matmul + 4·L·h·s.

    Forward costs 2·N; backward costs another 2·N for the activation gradients and nothing for
    the frozen weights' gradients (the adapter's own are negligible). Attention scores and their
    backward add the 4·L·h·s term.
    """
    return 4 * matmul_params + 4 * layers * hidden * seq_len


def mfu(*, flops_per_token: float, tokens_per_second: float, devices: int = 1, peak_flops: float) -> float:
    """Model FLOPs utilisation: achieved FLOP/s over the devices' peak."""
    return flops_per_token * tokens_per_second / (devices * peak_flops)


def peak_bf16_flops(device_name: str) -> tuple[str, float] | None:
    """(table key, dense bf16 FLOP/s) of the GPU called `device_name`, or None for one not in the table."""
    return next(((key, peak) for key, peak in BF16_PEAK_FLOPS if key in device_name), None)


def best_of_runs_throughput(step_tokens: Sequence[int], runs: Sequence[Sequence[float]], *, skip: int) -> float:
    """Tokens per second with each step's fastest time over repeated runs of the same steps.

    Every run trains the same batches in the same order, so step i costs the same work in each;
    other processes on a shared machine only ever add time. Taking the minimum per step (as
    `timeit` does per repeat) filters that out step by step. The first `skip` steps are left out.
    """
    if not runs or any(len(r) != len(step_tokens) for r in runs):
        raise ValueError("every run needs one time per step")
    best = [min(times) for times in zip(*runs, strict=True)][skip:]
    return float(sum(step_tokens[skip:]) / sum(best))


def ratio(value: float, baseline: float) -> float:
    """value / baseline; NaN when the baseline is zero (a missing measurement, not an infinite speed-up)."""
    return value / baseline if baseline else math.nan


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def relative_spread(values: Sequence[float]) -> float:
    """(max - min) / median: how far apart repeated measurements landed."""
    mid = median(values)
    return (max(values) - min(values)) / mid if mid else math.nan
