"""api/estimate.py: the arithmetic of the per-GPU memory estimate, table-driven."""

from __future__ import annotations

import dataclasses

import pytest

from kubeft_operator.api import estimate

# Llama-2-7B's config.json.
LLAMA_7B = estimate.Shape.from_config(
    {
        "model_type": "llama",
        "hidden_size": 4096,
        "num_hidden_layers": 32,
        "intermediate_size": 11008,
        "vocab_size": 32000,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "tie_word_embeddings": False,
    }
)
GIB = estimate.GIB


def test_parameter_count_matches_the_published_size_of_llama_7b():
    assert LLAMA_7B.params() == pytest.approx(6.74e9, rel=0.01)


def test_gpt2_names_are_read_and_its_mlp_is_not_gated():
    config = {"model_type": "gpt2", "n_embd": 768, "n_layer": 12, "n_head": 12, "vocab_size": 50257}
    shape = estimate.Shape.from_config(config)
    assert (shape.hidden_size, shape.intermediate_size, shape.gated_mlp) == (768, 3072, False)


@pytest.mark.parametrize(
    ("run", "want_trainable"),
    [
        # peft reports 4,194,304 for r=8 on q_proj and v_proj of Llama-2-7B.
        (estimate.Run(method="lora", rank=8), 4_194_304),
        (estimate.Run(method="lora", rank=16, target_modules=("all-linear",)), 39_976_960),
        (estimate.Run(method="ia3"), 32 * (4096 + 4096 + 11008)),
        (estimate.Run(method="promptTuning", num_virtual_tokens=20), 20 * 4096),
        (estimate.Run(method="prefixTuning", num_virtual_tokens=20), 20 * 2 * 32 * 4096),
    ],
)
def test_trainable_parameters_per_method(run, want_trainable):
    assert estimate.trainable_params(LLAMA_7B, run) == want_trainable


def test_16_bit_weights_of_a_7b_model_take_about_13_gib():
    result = estimate.estimate(LLAMA_7B, estimate.Run(method="lora"))
    assert result.weights / GIB == pytest.approx(12.55, rel=0.01)


def test_4_bit_quantization_cuts_the_weights_to_about_a_third():
    full = estimate.estimate(LLAMA_7B, estimate.Run(method="qlora"))
    quantized = estimate.estimate(LLAMA_7B, estimate.Run(method="qlora", quantization_bits=4))
    assert 0.25 < quantized.weights / full.weights < 0.35


def test_gradient_checkpointing_shrinks_activations():
    run = estimate.Run(method="lora", sequence_length=2048, batch_size=4)
    plain = estimate.estimate(LLAMA_7B, run)
    checkpointed = estimate.estimate(LLAMA_7B, dataclasses.replace(run, gradient_checkpointing=True))
    assert checkpointed.activations < plain.activations / 3


def test_activations_grow_with_batch_and_sequence():
    small = estimate.estimate(LLAMA_7B, estimate.Run(method="lora", sequence_length=512, batch_size=1))
    large = estimate.estimate(LLAMA_7B, estimate.Run(method="lora", sequence_length=1024, batch_size=2))
    assert large.activations == pytest.approx(4 * small.activations, rel=0.01)


def test_adapter_state_is_16_bytes_per_trainable_parameter():
    result = estimate.estimate(LLAMA_7B, estimate.Run(method="lora", rank=8))
    assert result.adapter == 16 * result.trainable_params


def test_cpu_runs_carry_no_gpu_overhead():
    assert estimate.estimate(LLAMA_7B, estimate.Run(method="lora", on_gpu=False)).overhead == 0


def test_an_unknown_method_is_refused_by_name():
    with pytest.raises(ValueError, match="`nope`"):
        estimate.trainable_params(LLAMA_7B, estimate.Run(method="nope"))
