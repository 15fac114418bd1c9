"""The arithmetic behind the benchmark figures (benchmarks/measures.py)."""

from __future__ import annotations

import math

import pytest

from benchmarks import measures

LLAMA3_8B = {"hidden": 4096, "layers": 32, "heads": 32, "kv_heads": 8, "intermediate": 14336, "vocab": 128256}


@pytest.mark.parametrize(
    ("values", "q", "want"),
    [
        ([3.0], 99, 3.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.5),
        ([4.0, 1.0, 3.0, 2.0], 0, 1.0),
        ([4.0, 1.0, 3.0, 2.0], 100, 4.0),
        (list(range(101)), 99, 99.0),
        ([0.0, 10.0], 99, 9.9),
    ],
)
def test_percentile_interpolates_between_closest_ranks(values: list[float], q: float, want: float) -> None:
    assert measures.percentile(values, q) == pytest.approx(want)


def test_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="empty"):
        measures.percentile([], 50)


@pytest.mark.parametrize(
    ("lengths", "batch_size", "want"),
    [
        ([5, 5, 5, 5], 2, 0.0),
        ([1, 3], 2, 1 / 3),  # padded to 3+3: 2 of 6 tokens are padding
        ([1, 3, 2, 2], 2, 2 / 10),  # batches (1,3) and (2,2): 10 tokens computed, 8 real
        ([1, 3, 2], 2, 2 / 8),  # a short last batch is padded to its own longest
        ([7, 1, 1, 1], 1, 0.0),  # no padding without batching
    ],
)
def test_padding_ratio_of_dynamically_padded_batches(lengths: list[int], batch_size: int, want: float) -> None:
    assert measures.padding_ratio(lengths, batch_size=batch_size) == pytest.approx(want)


def test_token_weighted_length_weights_each_sequence_by_its_tokens() -> None:
    # 10 tokens see a length of 10, 2 tokens see a length of 2: (100 + 4) / 12.
    assert measures.token_weighted_length([10, 2]) == pytest.approx(104 / 12)


def test_llama3_8b_matmul_params_leave_out_the_embedding_and_norms() -> None:
    # Llama-3-8B has 8,030,261,248 parameters: the matmuls, the input embedding, and 2 RMSNorms per layer + 1.
    embedding, norms = 128_256 * 4096, (2 * 32 + 1) * 4096
    assert measures.llama_matmul_params(**LLAMA3_8B) == 8_030_261_248 - embedding - norms


def test_lora_flops_and_mfu_reproduce_the_nemo_h100_reference_point() -> None:
    # FIELD-NOTES: Llama3-8B LoRA at sequence length 4096 on one H100, 12,473 tokens/s ≈ 402 TFLOP/s ≈ 41% MFU.
    flops = measures.lora_flops_per_token(
        matmul_params=measures.llama_matmul_params(**LLAMA3_8B), layers=32, hidden=4096, seq_len=4096
    )
    assert flops * 12_473 / 1e12 == pytest.approx(402, abs=1.5)
    mfu = measures.mfu(flops_per_token=flops, tokens_per_second=12_473, peak_flops=measures.H100_BF16_PEAK_FLOPS)
    assert mfu == pytest.approx(0.41, abs=0.005)


def test_mfu_divides_by_the_peak_of_every_device() -> None:
    one = measures.mfu(flops_per_token=1e9, tokens_per_second=1e4, peak_flops=1e14)
    assert measures.mfu(flops_per_token=1e9, tokens_per_second=1e4, devices=4, peak_flops=1e14) == one / 4


def test_ratio_against_a_missing_baseline_is_nan_not_infinite() -> None:
    assert math.isnan(measures.ratio(5.0, 0.0))


def test_best_of_runs_takes_each_steps_fastest_time() -> None:
    # Step 0 is warm-up; steps 1 and 2 were each slowed down in a different run.
    runs = [[9.0, 1.0, 5.0], [9.0, 4.0, 2.0]]
    assert measures.best_of_runs_throughput([100, 30, 60], runs, skip=1) == pytest.approx(90 / 3.0)


def test_best_of_runs_needs_runs_of_the_same_steps() -> None:
    with pytest.raises(ValueError, match="one time per step"):
        measures.best_of_runs_throughput([1, 2, 3], [[1.0, 1.0, 1.0], [1.0, 1.0]], skip=0)


def test_llama3_8b_has_its_published_parameter_count() -> None:
    assert measures.llama_params(**LLAMA3_8B, tie_embeddings=False) == 8_030_261_248


def test_tied_embeddings_are_counted_once() -> None:
    untied = measures.llama_params(**LLAMA3_8B, tie_embeddings=False)
    assert measures.llama_params(**LLAMA3_8B, tie_embeddings=True) == untied - 128_256 * 4096


@pytest.mark.parametrize(
    ("device_name", "want_key", "want_tflops"),
    [
        ("NVIDIA H100 80GB HBM3", "H100", 989),
        ("NVIDIA H100 PCIe", "H100 PCIe", 756),
        ("NVIDIA H100 NVL", "H100 NVL", 835),
        ("NVIDIA H200", "H200", 989),
        ("NVIDIA GH200 480GB", "GH200", 989),
        ("NVIDIA A100-SXM4-80GB", "A100", 312),
        ("NVIDIA L40S", "L40S", 362),
        ("NVIDIA L40", "L40", 181),
        ("NVIDIA L4", "L4", 121),
    ],
)
def test_bf16_peak_is_the_most_specific_match_of_the_device_name(
    device_name: str, want_key: str, want_tflops: float
) -> None:
    key, peak = measures.peak_bf16_flops(device_name) or ("", 0.0)
    assert (key, peak / 1e12) == (want_key, pytest.approx(want_tflops))


def test_a_gpu_missing_from_the_table_has_no_peak() -> None:
    assert measures.peak_bf16_flops("Tesla V100-SXM2-16GB") is None
