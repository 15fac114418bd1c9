"""The PEFT methods, each declared once: its name, its parameters, its tasks, how the trainer builds it.

:data:`METHODS` is the registry the rest derives from: the ``spec.method`` schema and its CEL
rules (here and in api/spec.py), the trainer's dispatch to a peft config builder
(kubeft_trainer/model/__init__.py, through :attr:`Method.builder`), which fields shape the
adapter's tensors for a warm start (api/layout.py), which tasks and quantization each method
supports (checked by the API server and again by the trainer), and the tests' parametrisation.

Adding a method that peft builds from plain parameters (LoRA-like: LoHa, LoKr, OFT, VeRA...) is
this file alone: its parameters model, a :class:`MethodType` member, a :class:`MethodSpec` block and
an entry with ``peft_config`` and ``peft_params``, which the trainer's generic builder
(kubeft_trainer/model/generic.py) reads; then ``make crds``. A method with rules of its own also
names a builder function in trainer-image/kubeft_trainer/model/.
"""

from __future__ import annotations

import dataclasses
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from kubeft_operator.api import contract
from kubeft_operator.api.base import ApiModel, cel

ModuleName = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.*\[\]-]+$")]


class MethodType(StrEnum):
    LORA = "lora"
    QLORA = "qlora"
    IA3 = "ia3"
    ADALORA = "adalora"
    PREFIX_TUNING = "prefixTuning"
    PROMPT_TUNING = "promptTuning"
    P_TUNING = "pTuning"


class LoraParams(ApiModel):
    """LoRA: train low-rank updates `B·A` beside frozen weight matrices. Also used by `qlora`."""

    r: int = Field(default=16, ge=1, le=1024, description="Rank of the update matrices.")
    alpha: int = Field(default=32, ge=1, le=4096, description="Scaling: updates are multiplied by alpha/r.")
    dropout: float = Field(default=0.05, ge=0, lt=1, description="Dropout on the LoRA input.")
    target_modules: list[ModuleName] | None = Field(
        default=None,
        max_length=64,
        description="Module names (suffixes) to adapt, e.g. q_proj, v_proj; `all-linear` for every linear "
        "layer. Left out, PEFT's default for the architecture applies.",
    )
    bias: Literal["none", "all", "lora_only"] = Field(default="none", description="Which biases to train.")
    use_rslora: bool = Field(default=False, description="Rank-stabilised scaling alpha/sqrt(r).")


class Ia3Params(ApiModel):
    """IA3: learn vectors that rescale activations of the targeted modules."""

    target_modules: list[ModuleName] | None = Field(default=None, max_length=64, description="Modules to rescale.")
    feedforward_modules: list[ModuleName] | None = Field(
        default=None, max_length=64, description="Subset of targetModules that are feed-forward layers."
    )


class AdaLoraParams(ApiModel):
    """AdaLoRA: LoRA whose rank budget is reallocated across layers while training."""

    init_r: int = Field(default=12, ge=1, le=1024, description="Initial rank of each update.")
    target_r: int = Field(default=8, ge=1, le=1024, description="Average target rank after pruning.")
    tinit: int = Field(default=0, ge=0, description="Steps of warmup before rank pruning starts.")
    tfinal: int = Field(default=0, ge=0, description="Steps at the end with the final ranks fixed.")
    delta_t: int = Field(default=1, ge=1, description="Steps between two budget reallocations.")
    alpha: int = Field(default=32, ge=1, le=4096, description="Scaling, as for LoRA.")
    dropout: float = Field(default=0.05, ge=0, lt=1, description="Dropout on the update input.")
    target_modules: list[ModuleName] | None = Field(default=None, max_length=64, description="Modules to adapt.")


class PrefixTuningParams(ApiModel):
    """Prefix tuning: trainable key/value prefixes prepended in every attention layer."""

    num_virtual_tokens: int = Field(default=20, ge=1, le=1024, description="Length of the prefix.")
    projection: bool = Field(default=False, description="Reparameterise the prefix through an MLP.")
    encoder_hidden_size: int | None = Field(default=None, ge=1, description="Hidden size of that MLP.")


class PromptTuningParams(ApiModel):
    """Prompt tuning: trainable soft-prompt embeddings prepended to the input."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": cel(("self.init != 'text' || has(self.initText)", "init: text needs initText")),
    }

    num_virtual_tokens: int = Field(default=20, ge=1, le=1024, description="Number of soft-prompt tokens.")
    init: Literal["random", "text"] = Field(default="random", description="Initialise randomly or from initText.")
    init_text: Annotated[str, StringConstraints(max_length=2048)] | None = Field(
        default=None, description="Text whose embeddings initialise the prompt (init: text)."
    )


class PTuningParams(ApiModel):
    """P-tuning: virtual tokens produced by a small prompt encoder (MLP or LSTM)."""

    num_virtual_tokens: int = Field(default=20, ge=1, le=1024, description="Number of virtual tokens.")
    encoder_hidden_size: int = Field(default=128, ge=1, le=65536, description="Hidden size of the prompt encoder.")
    encoder_type: Literal["MLP", "LSTM"] = Field(default="MLP", description="Prompt encoder architecture.")


ALL_TASKS = frozenset(contract.TASK_FIELDS)
PROMPT_LEARNING_TASKS = frozenset({"CAUSAL_LM", "SEQ_2_SEQ_LM", "SEQ_CLS", "FEATURE_EXTRACTION"})


@dataclasses.dataclass(frozen=True)
class Method:
    """One PEFT method, as every part of kubeft sees it."""

    name: str  # spec.method.type
    summary: str  # for the field's help text and the docs
    block: str  # spec.method.<block> holds its parameters (wire name)
    params: type[ApiModel]
    # "module:function" in the trainer image that returns its peft config; the generic builder
    # (kubeft_trainer/model/generic.py) when peft_config and peft_params say it all.
    builder: str = "kubeft_trainer.model.generic:config"
    peft_config: str | None = None  # the peft config class, for the generic builder
    peft_params: tuple[tuple[str, str], ...] = ()  # (our parameter's attribute, the peft argument)
    tasks: frozenset[str] = ALL_TASKS
    targets_modules: bool = True  # has targetModules, resolved against the model
    quantizable: bool = True  # may train on a quantized base (spec.model.quantization)
    needs_quantization: bool = False
    shape_fields: tuple[str, ...] = ()  # wire names of the parameters that shape the adapter's tensors

    @property
    def attribute(self) -> str:
        """The block's Python attribute on :class:`MethodSpec` (snake case)."""
        return "".join(f"_{c.lower()}" if c.isupper() else c for c in self.block)


_LORA_PEFT_PARAMS = (
    ("r", "r"),
    ("alpha", "lora_alpha"),
    ("dropout", "lora_dropout"),
    ("bias", "bias"),
    ("use_rslora", "use_rslora"),
)

METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            "lora", "low-rank updates", "lora", LoraParams,
            peft_config="LoraConfig", peft_params=_LORA_PEFT_PARAMS, shape_fields=("r", "targetModules"),
        ),
        Method(
            "qlora", "LoRA on a 4-bit quantized base", "lora", LoraParams,
            peft_config="LoraConfig", peft_params=_LORA_PEFT_PARAMS,
            needs_quantization=True, shape_fields=("r", "targetModules"),
        ),
        Method(
            "ia3", "learned activation scaling", "ia3", Ia3Params, "kubeft_trainer.model.ia3:config",
            shape_fields=("targetModules", "feedforwardModules"),
        ),
        Method(
            "adalora", "LoRA with an adaptive rank budget", "adalora", AdaLoraParams,
            "kubeft_trainer.model.adalora:config", shape_fields=("initR", "targetModules"),
        ),
        Method(
            "prefixTuning", "trainable attention prefixes", "prefixTuning", PrefixTuningParams,
            "kubeft_trainer.model.prompt_learning:prefix_tuning", tasks=PROMPT_LEARNING_TASKS,
            targets_modules=False, quantizable=False,
            shape_fields=("numVirtualTokens", "projection", "encoderHiddenSize"),
        ),
        Method(
            "promptTuning", "trainable soft-prompt embeddings", "promptTuning", PromptTuningParams,
            "kubeft_trainer.model.prompt_learning:prompt_tuning", tasks=PROMPT_LEARNING_TASKS,
            targets_modules=False, quantizable=False, shape_fields=("numVirtualTokens",),
        ),
        Method(
            "pTuning", "virtual tokens from a prompt encoder", "pTuning", PTuningParams,
            "kubeft_trainer.model.prompt_learning:p_tuning", tasks=PROMPT_LEARNING_TASKS,
            targets_modules=False, quantizable=False,
            shape_fields=("numVirtualTokens", "encoderHiddenSize", "encoderType"),
        ),
    )
}  # fmt: skip


def blocks() -> dict[str, list[str]]:
    """Parameter block -> the method types that read it (lora: lora and qlora)."""
    out: dict[str, list[str]] = {}
    for method in METHODS.values():
        out.setdefault(method.block, []).append(method.name)
    return out


def params_of(method: Any) -> ApiModel:
    """The parameters a :class:`MethodSpec` trains with: its block, or the defaults when left out."""
    entry = METHODS[str(method.type)]
    return getattr(method, entry.attribute, None) or entry.params()


def task_rules() -> list[tuple[str, str, str]]:
    """CEL rules on the spec: a method that supports only some tasks, and quantization only where it works."""
    rules = []
    for method in METHODS.values():
        if method.tasks != ALL_TASKS:
            tasks = sorted(method.tasks, key=list(contract.TASK_FIELDS).index)
            rules.append(
                (
                    f"self.method.type != '{method.name}' || self.task in [{', '.join(repr(t) for t in tasks)}]",
                    f"method {method.name} supports {', '.join(tasks)}",
                    ".method.type",
                )
            )
    quantizable = [m.name for m in METHODS.values() if m.quantizable]
    rules.append(
        (
            f"!has(self.model.quantization) || self.method.type in [{', '.join(repr(n) for n in quantizable)}]",
            f"quantization works with {', '.join(quantizable)} only",
            ".model.quantization",
        )
    )
    for method in METHODS.values():
        if method.needs_quantization:
            rules.append(
                (
                    f"self.method.type != '{method.name}' || has(self.model.quantization)",
                    f"method {method.name} needs spec.model.quantization (bits: 4)",
                    ".model",
                )
            )
    return rules


class MethodSpec(ApiModel):
    """The PEFT method and its parameters. Set `type`; tune it in the block of the same name."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": cel(
            *[
                (
                    f"!has(self.{block}) || self.type in [{', '.join(repr(m) for m in names)}]",
                    f"{block} parameters need type {' or '.join(names)}",
                )
                for block, names in blocks().items()
            ]
        )
    }

    type: MethodType = Field(description=", ".join(f"{m.name} ({m.summary})" for m in METHODS.values()) + ".")
    lora: LoraParams | None = Field(default=None, description="Parameters for lora and qlora.")
    ia3: Ia3Params | None = Field(default=None, description="Parameters for ia3.")
    adalora: AdaLoraParams | None = Field(default=None, description="Parameters for adalora.")
    prefix_tuning: PrefixTuningParams | None = Field(default=None, description="Parameters for prefixTuning.")
    prompt_tuning: PromptTuningParams | None = Field(default=None, description="Parameters for promptTuning.")
    p_tuning: PTuningParams | None = Field(default=None, description="Parameters for pTuning.")
