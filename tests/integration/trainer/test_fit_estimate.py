"""The fit estimate (api/estimate.py) against peaks measured on CPU: three shapes, two methods.

Each case trains three AdamW steps in a fresh process (fit_probe.py) and compares the peak resident
memory it added with the estimate (fp32 on CPU, so no GPU overhead). The error is printed per case
(`pytest -s`); docs/operator.md records it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import pytest

from kubeft_operator.api import estimate

# The estimate may be off by this much either way; measured errors are well inside it (docs/operator.md).
MAX_RELATIVE_ERROR = 0.25

SHAPES = {
    "wide-vocab": estimate.Shape(
        hidden_size=256, num_hidden_layers=4, intermediate_size=688, vocab_size=32000, num_attention_heads=8
    ),
    "deep-gqa": estimate.Shape(
        hidden_size=512, num_hidden_layers=8, intermediate_size=1408, vocab_size=8000,
        num_attention_heads=8, num_key_value_heads=2,
    ),
    "tied": estimate.Shape(
        hidden_size=768, num_hidden_layers=6, intermediate_size=2048, vocab_size=16000,
        num_attention_heads=12, num_key_value_heads=4, tie_word_embeddings=True,
    ),
}  # fmt: skip
RUNS = {
    "lora": estimate.Run(method="lora", rank=16),
    "ia3": estimate.Run(method="ia3"),
}


def _measure(shape: estimate.Shape, run: estimate.Run) -> dict[str, int]:
    doc = {"shape": dataclasses.asdict(shape), "run": dataclasses.asdict(run)}
    done = subprocess.run(
        [sys.executable, "-m", "tests.integration.trainer.fit_probe", json.dumps(doc)],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=300,
        check=True,
    )
    result: dict[str, int] = json.loads(done.stdout.splitlines()[-1])
    return result


@pytest.mark.parametrize("method", sorted(RUNS))
@pytest.mark.parametrize("shape_name", sorted(SHAPES))
def test_estimate_is_within_bound_of_measured_cpu_peak(shape_name: str, method: str) -> None:
    shape = SHAPES[shape_name]
    run = dataclasses.replace(RUNS[method], weight_dtype="float32", on_gpu=False, sequence_length=256, batch_size=4)
    measured = _measure(shape, run)
    estimated = estimate.estimate(shape, run)
    error = (estimated.total - measured["peak"]) / measured["peak"]
    print(
        f"\nfit estimate {shape_name}/{method}: measured {measured['peak'] / 2**20:.0f} MiB, "
        f"estimated {estimated.total / 2**20:.0f} MiB, error {error:+.1%}"
    )
    assert estimated.trainable_params == measured["trainable"]
    assert abs(error) <= MAX_RELATIVE_ERROR
