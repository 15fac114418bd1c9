"""Per-GPU memory a fine-tuning run needs, estimated from the base model's shape: pure arithmetic.

The operator calls :func:`estimate` at admission (builders/fit.py) with the shape from
``spec.model.config`` (the fields of the base model's ``config.json``), before any pod exists; the
trainer may call it with the ``config.json`` it loaded. Both read the same numbers from here.

What is counted, per GPU (the trainer runs data parallel: each GPU holds a whole replica and a
micro-batch of ``training.batchSize``):

- weights: every parameter of the base in the load dtype; with ``model.quantization`` the linear
  layers of the blocks take 4 or 8 bits (plus the quantization constants) and the embeddings,
  norms and head stay in the compute dtype;
- adapter: the trainable parameters, in fp32 (peft keeps adapters in fp32 under a 16-bit base), with
  their fp32 gradients and AdamW's two fp32 moments: 16 bytes per trainable parameter (AdaLoRA
  keeps three more fp32 copies for its importance scores);
- activations: what autograd keeps of the forward pass for the backward pass, per token and layer,
  plus the logits and their gradient (the largest single tensors for a big vocabulary); with
  gradient checkpointing only each block's input is kept, plus one block recomputed at a time;
- overhead: a fixed allowance for the CUDA context, the allocator's caching and workspaces.

The coefficients of the activation model were fitted to peaks measured on CPU
(tests/integration/trainer/test_fit_estimate.py, which prints the error per shape and method);
docs/operator.md records the measured error. Attention is taken to be memory-efficient (SDPA or
flash attention: no sequence-squared scores kept), as on current GPUs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

GIB = 1024**3
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
# Per trainable parameter: fp32 value, fp32 gradient, AdamW exp_avg and exp_avg_sq.
ADAPTER_STATE_BYTES = 16
# AdaLoRA's importance estimates: ipt, exp_avg_ipt, exp_avg_unc, each fp32 per trainable parameter.
ADALORA_EXTRA_BYTES = 12
# CUDA context, cuBLAS workspaces and the caching allocator's slack.
GPU_OVERHEAD_BYTES = int(1.0 * GIB)
# Activations kept per token and block, in elements: multiples of hidden_size, intermediate_size and
# the key/value width, fitted to measured peaks (see the module docstring).
ACT_PER_HIDDEN = 14.0
ACT_PER_INTERMEDIATE = 6.0
ACT_PER_KV = 2.0
# Logits (fp32), their log-softmax and their gradient: copies of batch x sequence x vocabulary.
LOGIT_COPIES = 3.0
# Extra per token and targeted module for LoRA-like methods, in multiples of its input width: the dropout's
# output and mask, the base layer's input and A*x.
LORA_ACT_PER_INPUT = 4.0

# Module names peft resolves in Llama-style blocks (also Mistral, Qwen2, Gemma...): (input, output) widths.
_ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
_MLP = ("gate_proj", "up_proj", "down_proj")
# What peft adapts when targetModules is left out, for Llama-style models (its per-architecture default).
DEFAULT_LORA_TARGETS = ("q_proj", "v_proj")
DEFAULT_IA3_TARGETS = ("k_proj", "v_proj", "down_proj")
DEFAULT_IA3_FEEDFORWARD = ("down_proj",)


@dataclasses.dataclass(frozen=True)
class Shape:
    """The fields of a transformer's ``config.json`` the estimate reads."""

    hidden_size: int
    num_hidden_layers: int
    intermediate_size: int
    vocab_size: int
    num_attention_heads: int
    num_key_value_heads: int | None = None
    tie_word_embeddings: bool = False
    gated_mlp: bool = True  # Llama-style gate/up/down; False for GPT-2/BERT-style up/down

    @property
    def kv_width(self) -> int:
        heads = self.num_key_value_heads or self.num_attention_heads
        return self.hidden_size // self.num_attention_heads * heads

    def linears(self) -> dict[str, tuple[int, int]]:
        """Each linear layer of one block, by the module name peft targets: (in features, out features)."""
        h, i, kv = self.hidden_size, self.intermediate_size, self.kv_width
        out = {"q_proj": (h, h), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (h, h)}
        out.update({"gate_proj": (h, i), "up_proj": (h, i)} if self.gated_mlp else {"up_proj": (h, i)})
        out["down_proj"] = (i, h)
        return out

    def block_linear_params(self) -> int:
        return sum(a * b for a, b in self.linears().values())

    def embedding_params(self) -> int:
        copies = 1 if self.tie_word_embeddings else 2
        return copies * self.vocab_size * self.hidden_size

    def params(self) -> int:
        """All parameters: blocks (linears and two norms each), embeddings, head and final norm."""
        h = self.hidden_size
        return self.num_hidden_layers * (self.block_linear_params() + 2 * h) + self.embedding_params() + h

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Shape:
        """From a ``config.json`` document, with GPT-2's names (n_embd, n_layer...) as a fallback."""
        hidden = int(config.get("hidden_size") or config["n_embd"])
        heads = int(config.get("num_attention_heads") or config["n_head"])
        return cls(
            hidden_size=hidden,
            num_hidden_layers=int(config.get("num_hidden_layers") or config["n_layer"]),
            intermediate_size=int(config.get("intermediate_size") or config.get("n_inner") or 4 * hidden),
            vocab_size=int(config["vocab_size"]),
            num_attention_heads=heads,
            num_key_value_heads=config.get("num_key_value_heads"),
            tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
            gated_mlp="n_embd" not in config and config.get("model_type") not in ("gpt2", "bert", "roberta"),
        )


@dataclasses.dataclass(frozen=True)
class Run:
    """What the run does with the model; built from the FineTuneJob spec by builders/fit.py."""

    method: str  # spec.method.type
    weight_dtype: str = "bfloat16"  # float32, bfloat16 or float16
    quantization_bits: int | None = None  # 4 or 8
    rank: int = 16  # LoRA r, AdaLoRA initR
    target_modules: Sequence[str] | None = None  # None: peft's default; ("all-linear",) for every linear
    feedforward_modules: Sequence[str] | None = None  # IA3's, scaled on their input; None: peft's default
    num_virtual_tokens: int = 20
    encoder_hidden_size: int | None = None  # pTuning's prompt encoder, prefixTuning's projection
    sequence_length: int = 512
    batch_size: int = 8
    gradient_checkpointing: bool = False
    vocab_logits: bool = True  # a language-model head (CAUSAL_LM, SEQ_2_SEQ_LM); False for classification heads
    on_gpu: bool = True  # counts GPU_OVERHEAD_BYTES


@dataclasses.dataclass(frozen=True)
class Estimate:
    """Bytes per GPU, by part."""

    weights: int
    adapter: int  # trainable parameters, their gradients and optimizer state
    activations: int
    overhead: int
    trainable_params: int

    @property
    def total(self) -> int:
        return self.weights + self.adapter + self.activations + self.overhead


def _targets(shape: Shape, run: Run, default: Sequence[str]) -> list[tuple[int, int]]:
    """(in, out) of every targeted linear in one block; a name the shape does not know counts as hidden x hidden."""
    linears = shape.linears()
    names = list(run.target_modules or default)
    if "all-linear" in names:
        return list(linears.values())
    h = shape.hidden_size
    return [linears.get(name.rsplit(".", 1)[-1], (h, h)) for name in names]


def trainable_params(shape: Shape, run: Run) -> int:
    """Parameters the method trains (peft's ``print_trainable_parameters``, up to small heads)."""
    h, layers, tokens = shape.hidden_size, shape.num_hidden_layers, run.num_virtual_tokens
    if run.method in ("lora", "qlora", "adalora"):
        per_block = sum(run.rank * (a + b) for a, b in _targets(shape, run, DEFAULT_LORA_TARGETS))
        if run.method == "adalora":
            per_block += run.rank * len(_targets(shape, run, DEFAULT_LORA_TARGETS))  # the singular values E
        return layers * per_block
    if run.method == "ia3":
        linears = shape.linears()
        feedforward = {n.rsplit(".", 1)[-1] for n in run.feedforward_modules or DEFAULT_IA3_FEEDFORWARD}
        names = list(linears) if "all-linear" in (run.target_modules or ()) else run.target_modules
        h = shape.hidden_size
        return layers * sum(
            linears.get(short, (h, h))[0 if short in feedforward else 1]
            for short in (n.rsplit(".", 1)[-1] for n in names or DEFAULT_IA3_TARGETS)
        )
    if run.method == "prefixTuning":
        if run.encoder_hidden_size:
            enc = run.encoder_hidden_size
            return tokens * h + h * enc + enc + enc * 2 * layers * h + 2 * layers * h
        return tokens * 2 * layers * h
    if run.method == "promptTuning":
        return tokens * h
    if run.method == "pTuning":
        enc = run.encoder_hidden_size or h
        return tokens * h + h * enc + enc * enc + enc * h + 2 * enc + h
    raise ValueError(f"unknown method `{run.method}`")


def _weights(shape: Shape, run: Run) -> int:
    dtype = DTYPE_BYTES[run.weight_dtype]
    if run.quantization_bits is None:
        return shape.params() * dtype
    quantized = shape.num_hidden_layers * shape.block_linear_params()
    # NF4 with double quantization: 4 bits plus about 0.13 bits of constants per weight; int8: 8 bits
    # plus an fp32 scale per row (negligible).
    bits = 4.13 if run.quantization_bits == 4 else 8.0
    return int(quantized * bits / 8) + (shape.params() - quantized) * dtype


def _activations(shape: Shape, run: Run) -> int:
    h, i, layers = shape.hidden_size, shape.intermediate_size, shape.num_hidden_layers
    tokens = run.batch_size * (run.sequence_length + (run.num_virtual_tokens if _prompt(run) else 0))
    # Activations follow the compute dtype: 16-bit under autocast, fp32 for an fp32 run.
    act = 4 if run.weight_dtype == "float32" and run.quantization_bits is None else 2
    per_token = ACT_PER_HIDDEN * h + ACT_PER_INTERMEDIATE * i + ACT_PER_KV * shape.kv_width
    if run.method in ("lora", "qlora", "adalora"):
        per_token += LORA_ACT_PER_INPUT * sum(a + run.rank for a, _ in _targets(shape, run, DEFAULT_LORA_TARGETS))
    block = int(tokens * per_token * act)
    kept = layers * tokens * h * act + block if run.gradient_checkpointing else layers * block
    logits = int(LOGIT_COPIES * tokens * shape.vocab_size * 4) if run.vocab_logits else 0
    return kept + logits


def _prompt(run: Run) -> bool:
    return run.method in ("promptTuning", "pTuning", "prefixTuning")


def estimate(shape: Shape, run: Run) -> Estimate:
    """Per-GPU bytes of ``run`` on a base of ``shape``."""
    trainable = trainable_params(shape, run)
    per_param = ADAPTER_STATE_BYTES + (ADALORA_EXTRA_BYTES if run.method == "adalora" else 0)
    return Estimate(
        weights=_weights(shape, run),
        adapter=trainable * per_param,
        activations=_activations(shape, run),
        overhead=GPU_OVERHEAD_BYTES if run.on_gpu else 0,
        trainable_params=trainable,
    )
