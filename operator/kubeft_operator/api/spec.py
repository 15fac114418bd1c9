"""The FineTuneJob spec: the one declared place for every field a user can write.

The operator validates and renders this model into the trainer's config file; the trainer
parses the same file back into it (``FineTuneJobSpec.model_validate``). ``make crds`` turns
these classes, their descriptions and their CEL rules into ``crds/finetunejob.yaml``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from kubeft_operator.api import contract, methods, promotion
from kubeft_operator.api.base import (
    EXTENDED_RESOURCE_RULES,
    LABEL_KEY_MSG,
    LABEL_KEY_RULE,
    ApiModel,
    ExtendedResourceName,
    LabelKey,
    LabelValue,
    Name,
    SecretKeyRef,
    ShortStr,
    Uri,
    cel,
)

# The PEFT methods, their parameter models and MethodSpec live in their registry (api/methods.py).
from kubeft_operator.api.methods import MethodSpec

# Allowed sources: a Hub id (`org/name`), `s3://bucket/key` or an absolute path on a mounted
# volume. Anything with another scheme (http, file, gs, ...) is refused at apply time, which
# also closes the SSRF door: the trainer never fetches an arbitrary URL.
SOURCE_RULE = (
    "self.startsWith('s3://') ? self.matches('^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.+$') : "
    "(self.startsWith('/') || (!self.contains('://') && "
    "self.matches('^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$')))"
)
SOURCE_MSG = (
    "must be a Hub id (org/name), an s3://bucket/key URI or an absolute path on a mounted volume; "
    "other schemes such as http:// or file:// are not allowed"
)
S3_PREFIX_RULE = "self.matches('^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/[^/].*$')"
S3_PREFIX_MSG = "must be an s3://bucket/prefix URI with a non-empty prefix (a bare bucket root is not allowed)"

Source = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
Quantity = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$"),
]


class Task(StrEnum):
    CAUSAL_LM = "CAUSAL_LM"
    SEQ_2_SEQ_LM = "SEQ_2_SEQ_LM"
    SEQ_CLS = "SEQ_CLS"
    TOKEN_CLS = "TOKEN_CLS"
    QUESTION_ANS = "QUESTION_ANS"
    FEATURE_EXTRACTION = "FEATURE_EXTRACTION"


# --------------------------------------------------------------------------------------- model


class Quantization(ApiModel):
    """Load the base model quantized (bitsandbytes, GPU only); required by `qlora`."""

    bits: Literal[4, 8] = Field(description="4 for NF4/FP4 (QLoRA), or 8 for LLM.int8.")
    quant_type: Literal["nf4", "fp4"] = Field(default="nf4", description="4-bit data type.")
    double_quant: bool = Field(default=True, description="Quantize the quantization constants too.")


class ModelConfig(ApiModel):
    """The fields of the base model's config.json that the fit estimate reads (api/estimate.py).

    The operator does not fetch the checkpoint: copy these from its config.json (GPT-2 style names:
    n_embd, n_layer, n_head, n_inner). Left out, status.estimate stays empty and nothing is refused.
    """

    hidden_size: int = Field(ge=1, le=1048576, description="config.json hidden_size.")
    num_hidden_layers: int = Field(ge=1, le=4096, description="config.json num_hidden_layers.")
    intermediate_size: int = Field(ge=1, le=4194304, description="config.json intermediate_size (MLP width).")
    vocab_size: int = Field(ge=1, le=16777216, description="config.json vocab_size.")
    num_attention_heads: int = Field(ge=1, le=4096, description="config.json num_attention_heads.")
    num_key_value_heads: int | None = Field(
        default=None, ge=1, le=4096, description="config.json num_key_value_heads (grouped-query attention)."
    )
    tie_word_embeddings: bool = Field(default=False, description="config.json tie_word_embeddings.")
    gated_mlp: bool = Field(
        default=True,
        description="Llama-style MLP with gate, up and down projections (Llama, Mistral, Qwen, Gemma); false for "
        "GPT-2/BERT style with two.",
    )


class ModelSpec(ApiModel):
    """The base checkpoint to adapt."""

    source: Source = Field(
        description="Hub id (`org/name`), `s3://bucket/prefix` holding a saved checkpoint, or an "
        "absolute path on a mounted volume.",
        json_schema_extra=cel((SOURCE_RULE, SOURCE_MSG)),
    )
    revision: ShortStr = Field(default="main", description="Hub revision (branch, tag or commit) to pin.")
    token_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret holding a Hub token with read scope, for gated models."
    )
    trust_remote_code: bool = Field(
        default=False, description="Run modelling code shipped with the checkpoint. Leave off unless you trust it."
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto", description="Dtype to load the base weights in; `auto` picks bfloat16 on GPUs that support it."
    )
    quantization: Quantization | None = Field(default=None, description="Quantize the base at load time.")
    config: ModelConfig | None = Field(
        default=None,
        description="The base model's shape, from its config.json: the operator estimates the memory each GPU "
        "needs from it before creating any pod (status.estimate; spec.resources.failIfNotFits).",
    )


# ------------------------------------------------------------------------------------- dataset


class DatasetFields(ApiModel):
    """Names of the record fields the trainer reads. Which ones are needed depends on the task.

    - text: `text` (CAUSAL_LM, FEATURE_EXTRACTION anchor)
    - prompt and completion: `prompt` + `completion` (CAUSAL_LM loss on the completion only; SEQ_2_SEQ_LM)
    - chat: `messages`, a list of {role, content}, formatted by the tokenizer's chat template (CAUSAL_LM)
    - classification: `text` + `label` (SEQ_CLS)
    - token classification: `tokens` + `tags` (TOKEN_CLS)
    - extractive QA: `question` + `context` + `answer` (QUESTION_ANS; answer is {text, start})
    - embeddings: `text` + `pair`, positive pairs trained with in-batch negatives (FEATURE_EXTRACTION)
    """

    text: ShortStr | None = Field(default=None, description="Field with the input text.")
    prompt: ShortStr | None = Field(default=None, description="Field with the prompt (input) text.")
    completion: ShortStr | None = Field(default=None, description="Field with the completion (target) text.")
    messages: ShortStr | None = Field(default=None, description="Field with a chat as a list of {role, content}.")
    label: ShortStr | None = Field(default=None, description="Field with the class label (string or integer).")
    tokens: ShortStr | None = Field(default=None, description="Field with a list of words.")
    tags: ShortStr | None = Field(default=None, description="Field with one label per word.")
    question: ShortStr | None = Field(default=None, description="Field with the question.")
    context: ShortStr | None = Field(default=None, description="Field with the passage holding the answer.")
    answer: ShortStr | None = Field(default=None, description="Field with the answer: {text, start}.")
    pair: ShortStr | None = Field(default=None, description="Field with a text that matches `text`.")


class DatasetPreflight(ApiModel):
    """Checks of the tokenized dataset, run by the trainer before the base model is loaded.

    The trainer always writes the dataset report (status.dataset, the run's artifacts, TensorBoard);
    these thresholds decide when the report fails the run (reason DatasetInvalid, exit 64, not retried).
    """

    max_truncated_fraction: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Fail when more than this fraction of the training records is longer than "
        "spec.dataset.maxLength (and so truncated), e.g. 0.2. Left out: never fail on truncation; above 0.2 "
        "the trainer only warns (status.dataset.warnings).",
    )
    min_records: int = Field(
        default=1,
        ge=1,
        description="Fail when fewer training records than this are left after dropping the unusable ones.",
    )


class DatasetSpec(ApiModel):
    """Where the data is and how its records are shaped."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": cel(
            (
                "!(has(self.validationSource) && has(self.validationFraction))",
                "set at most one of validationSource and validationFraction",
            ),
        )
    }

    source: Source = Field(
        description="Hub dataset id, `s3://bucket/key` of a file, or an absolute path to a file on a volume.",
        json_schema_extra=cel((SOURCE_RULE, SOURCE_MSG)),
    )
    format: Literal["jsonl", "json", "csv", "parquet"] = Field(default="jsonl", description="File format.")
    split: ShortStr = Field(default="train", description="Split to train on, for Hub datasets.")
    fields: DatasetFields = Field(description="Which record fields hold what; see DatasetFields.")
    labels: list[ShortStr] | None = Field(
        default=None,
        max_length=1024,
        description="Class names, in id order. Inferred from the data when left out.",
    )
    validation_source: Source | None = Field(
        default=None,
        description="A separate validation file (or Hub split name for Hub datasets).",
    )
    validation_fraction: float | None = Field(
        default=None, gt=0, le=0.5, description="Hold out this fraction of the training records for validation."
    )
    max_length: int = Field(default=512, ge=8, le=131072, description="Truncate records to this many tokens.")
    packing: bool = Field(
        default=True,
        description="Padding-free packing: concatenate records in a batch with position ids instead of "
        "padding them. Faster; only used where the model supports it (causal LMs).",
    )
    preflight: DatasetPreflight | None = Field(
        default=None,
        description="Thresholds that fail the run early on bad data, after tokenizing and before the base "
        "model is loaded. Left out: at least one usable record, truncation only warned about.",
    )


# -------------------------------------------------------------------------------------- method


# ------------------------------------------------------------------------------------ training


class EvaluationSpec(ApiModel):
    """When to evaluate on the validation split, and what to report."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": cel(("self.strategy != 'steps' || has(self.steps)", "strategy: steps needs steps")),
    }

    strategy: Literal["no", "steps", "epoch"] = Field(
        default="epoch", description="Evaluate every N steps, every epoch, or never."
    )
    steps: int | None = Field(default=None, ge=1, description="Evaluation interval for strategy: steps.")
    metrics: list[Literal["accuracy", "f1", "perplexity"]] = Field(
        default_factory=list,
        max_length=3,
        description="Extra metrics besides the loss: accuracy and macro F1 for classification tasks, "
        "perplexity for language models.",
    )


class DivergenceGuard(ApiModel):
    """Stop early, with reason Diverged, instead of burning GPU hours on a run that blew up."""

    enabled: bool = Field(default=True, description="Stop on NaN/inf loss or a runaway loss.")
    max_loss_factor: float = Field(
        default=4.0, gt=1, description="Stop when the smoothed loss exceeds this multiple of its best value."
    )
    patience_steps: int = Field(
        default=3, ge=1, description="Consecutive logged steps above the bound before stopping."
    )


class TrainingSpec(ApiModel):
    """Hyperparameters. Set exactly one of epochs and maxSteps."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": cel(
            ("has(self.epochs) != has(self.maxSteps)", "set exactly one of epochs and maxSteps"),
        )
    }

    epochs: float | None = Field(default=None, gt=0, le=1000, description="Passes over the training data.")
    max_steps: int | None = Field(default=None, ge=1, description="Optimizer steps to train for.")
    learning_rate: float = Field(default=2e-4, gt=0, le=1, description="Peak learning rate. 1e-4 to 3e-4 suits LoRA.")
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = Field(
        default="linear", description="Learning-rate schedule after warmup."
    )
    warmup_ratio: float = Field(default=0.0, ge=0, lt=1, description="Fraction of steps spent warming up.")
    batch_size: int = Field(default=8, ge=1, le=4096, description="Micro-batch size per device.")
    gradient_accumulation_steps: int = Field(default=1, ge=1, le=1024, description="Micro-batches per optimizer step.")
    weight_decay: float = Field(default=0.0, ge=0, le=1, description="AdamW weight decay.")
    max_grad_norm: float = Field(default=1.0, gt=0, description="Gradient clipping norm.")
    seed: int = Field(default=42, ge=0, description="Seed for data order and initialisation.")
    precision: Literal["auto", "bf16", "fp16", "fp32"] = Field(
        default="auto", description="Mixed precision; `auto` is bf16 on GPUs that support it, else fp32."
    )
    gradient_checkpointing: bool = Field(
        default=False, description="Trade compute for memory. Off is about 20% faster when memory allows."
    )
    logging_steps: int = Field(default=1, ge=1, description="Report loss and progress every N steps.")
    checkpoint_steps: int = Field(default=100, ge=1, description="Save a durable checkpoint every N steps.")
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec, description="Evaluation schedule and metrics.")
    divergence: DivergenceGuard = Field(default_factory=DivergenceGuard, description="Early stop on divergence.")
    parallelism: Literal["auto", "ddp", "fsdp"] = Field(
        default="auto",
        description="How the trainer processes share the model. `ddp`: every GPU holds the whole model (fastest "
        "when it fits). `fsdp`: fully sharded across all processes of all nodes, base weights frozen, so a model "
        "larger than one GPU can be tuned. `auto`: fsdp when the fit estimate (status.estimate) of one replica "
        "exceeds the GPU memory the operator declares (chart value trainer.gpuMemoryGiB) and there is more "
        "than one process, else ddp.",
    )


# ------------------------------------------------------------------------ resources/scheduling


class Toleration(ApiModel):
    """A toleration, as in a Pod spec."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": cel(
            ("has(self.key) || self.operator == 'Exists'", "a toleration without a key must use operator Exists"),
            ("self.operator != 'Exists' || !has(self.value)", "a toleration with operator Exists takes no value"),
            (
                "!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
                "tolerationSeconds is only allowed with effect NoExecute",
            ),
        ),
    }

    key: LabelKey | None = Field(default=None, description="Taint key to tolerate.")
    operator: Literal["Exists", "Equal"] = Field(default="Equal", description="Exists or Equal.")
    value: LabelValue | None = Field(default=None, description="Taint value, for operator Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(default=None, description="Effect.")
    toleration_seconds: int | None = Field(default=None, description="For NoExecute: how long to stay bound.")


MAX_NODES = 64


class ResourcesSpec(ApiModel):
    """What each trainer pod requests."""

    gpus: int = Field(default=1, ge=0, le=16, description="GPUs per node (`nvidia.com/gpu`). 0 trains on CPU.")
    nodes: int = Field(
        default=1,
        ge=1,
        le=MAX_NODES,
        description="Pods (machines) that train together, each with `gpus` GPUs. More than 1 runs an Indexed Job "
        "of that many pods and a headless Service for their rendezvous; the group fails, restarts and succeeds "
        "as one (docs/trainer.md, Large models).",
    )
    cpu: Quantity = Field(default="4", description="CPU request and limit per pod.")
    memory: Quantity = Field(
        default="32Gi",
        description="Memory request and limit per pod. It includes what the trainer writes to /dev/shm, a memory "
        "volume of up to the operator's shm size (chart value trainer.shmSize, 2Gi by default).",
    )
    fail_if_not_fits: bool = Field(
        default=False,
        description="Fail the job before any pod is created (reason InsufficientGpuMemory) when the fit estimate "
        "(status.estimate, from spec.model.config) exceeds the GPU memory the operator declares for the job's "
        "GPUs (chart value trainer.gpuMemoryGiB). Left false: condition Fits only warns.",
    )
    gpu_resource_name: ExtendedResourceName = Field(
        default="nvidia.com/gpu",
        description="Extended resource name for GPUs, such as nvidia.com/gpu or amd.com/gpu.",
        json_schema_extra=cel(*EXTENDED_RESOURCE_RULES),
    )


class SchedulingSpec(ApiModel):
    """Where and in which queue the trainer runs."""

    node_selector: dict[LabelKey, LabelValue] | None = Field(
        default=None,
        max_length=32,
        description="Node labels the trainer pod requires, e.g. a GPU product.",
        json_schema_extra=cel((LABEL_KEY_RULE, LABEL_KEY_MSG)),
    )
    tolerations: list[Toleration] | None = Field(default=None, max_length=32, description="Taints to tolerate.")
    priority_class_name: Name | None = Field(default=None, description="PriorityClass of the trainer pod.")
    queue_name: Annotated[Name, StringConstraints(max_length=63)] | None = Field(
        default=None,
        description="Kueue LocalQueue (at most 63 characters: it becomes a label). The Job is created suspended "
        "and Kueue admits it. Left out: the operator's default queue (chart value trainer.defaults.queueName), "
        "if it has one.",
    )


# -------------------------------------------------------------------------------------- volumes

# The trainer pod's own volumes (builders/job.py); a volume of the spec may not take their names.
TRAINER_VOLUME_NAMES = ("config", "workdir", "hf-cache", "shm")
# Where spec.volumeMounts may mount. The trainer's own mounts (/etc/kubeft, /var/lib/kubeft, the model
# cache, /dev/shm) and the image's code (/opt, /src) lie outside them, so a mount can neither hide the
# trainer's files nor replace its code (which would bypass the image allowlist).
MOUNT_ROOTS = ("/data", "/datasets", "/models", "/mnt")
DNS_LABEL = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")]
MOUNT_PATH_RULES = (
    (
        " || ".join(f"self == '{root}' || self.startsWith('{root}/')" for root in MOUNT_ROOTS),
        f"must be {', '.join(MOUNT_ROOTS[:-1])} or {MOUNT_ROOTS[-1]}, or a path under one of them",
    ),
    ("!self.matches('/[.][.]?(/|$)')", "must not contain . or .. segments"),
)


class PersistentVolumeClaimSource(ApiModel):
    """A PersistentVolumeClaim in the FineTuneJob's namespace."""

    claim_name: Name = Field(description="Name of the PersistentVolumeClaim, in the same namespace as the FineTuneJob.")
    read_only: bool = Field(
        default=True,
        description="Mount the claim read-only (the default: datasets and base models are read, never written). "
        "Set false to let the trainer write to it.",
    )


class ConfigMapSource(ApiModel):
    """A ConfigMap in the FineTuneJob's namespace, mounted read-only, one file per key."""

    name: Name = Field(description="Name of the ConfigMap, in the same namespace as the FineTuneJob.")


class Volume(ApiModel):
    """A volume of the trainer pod: a PersistentVolumeClaim or a ConfigMap. Set exactly one of them."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": cel(
            (
                "has(self.persistentVolumeClaim) != has(self.configMap)",
                "set exactly one of persistentVolumeClaim and configMap",
            ),
            (
                "!(self.name in [" + ", ".join(f"'{name}'" for name in TRAINER_VOLUME_NAMES) + "])",
                f"{', '.join(TRAINER_VOLUME_NAMES[:-1])} and {TRAINER_VOLUME_NAMES[-1]} name the trainer's "
                "own volumes; choose another name",
                ".name",
            ),
        ),
    }

    name: DNS_LABEL = Field(description="Volume name, unique in spec.volumes; spec.volumeMounts refers to it.")
    persistent_volume_claim: PersistentVolumeClaimSource | None = Field(
        default=None, description="Mount a PersistentVolumeClaim: a dataset or models on shared storage."
    )
    config_map: ConfigMapSource | None = Field(default=None, description="Mount a ConfigMap (read-only).")


class VolumeMount(ApiModel):
    """Where a volume of spec.volumes appears in the trainer container."""

    name: DNS_LABEL = Field(description="Name of a volume in spec.volumes.")
    mount_path: Annotated[str, StringConstraints(max_length=512, pattern=r"^(/[A-Za-z0-9._-]+)+$")] = Field(
        description=f"Absolute path, unique in spec.volumeMounts, under one of {', '.join(MOUNT_ROOTS)}: the "
        "trainer's own directories and code live elsewhere. Point spec.dataset.source or spec.model.source "
        "at a file or directory below it.",
        json_schema_extra=cel(*MOUNT_PATH_RULES),
    )
    read_only: bool = Field(default=False, description="Mount read-only (a ConfigMap always is).")


# ---------------------------------------------------------------------------- storage / output


class StorageSpec(ApiModel):
    """How to reach S3-compatible object storage, for every s3:// URI in this spec."""

    endpoint: Annotated[str, StringConstraints(max_length=1024, pattern=r"^https?://[^\s]+$")] | None = Field(
        default=None, description="S3 endpoint URL for MinIO, Ceph and other S3-compatible stores. Left out: AWS."
    )
    region: ShortStr = Field(default="us-east-1", description="Region to sign requests for.")
    credentials_secret_ref: Annotated[
        SecretKeyRef | None,
        Field(
            description="Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and AWS_SESSION_TOKEN for "
            "temporary credentials (the key field is ignored). Left out: the default chain, e.g. workload identity."
        ),
    ] = None


class S3Output(ApiModel):
    """Upload the adapter to object storage."""

    uri: Uri = Field(
        description="s3://bucket/prefix to write the adapter under.",
        json_schema_extra=cel((S3_PREFIX_RULE, S3_PREFIX_MSG)),
    )


class HubOutput(ApiModel):
    """Push the adapter to a Hugging Face Hub model repository."""

    repo: Annotated[str, StringConstraints(max_length=200, pattern=r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")] = Field(
        description="Repository id, `org/name`. Created if missing."
    )
    private: bool = Field(default=True, description="Create the repository private.")
    token_secret_ref: SecretKeyRef = Field(description="Secret holding a Hub token with write scope.")
    endpoint: Annotated[str, StringConstraints(max_length=1024, pattern=r"^https?://[^\s]+$")] | None = Field(
        default=None, description="Hub endpoint for self-hosted mirrors. Left out: huggingface.co."
    )


class OutputSpec(ApiModel):
    """Where the adapter goes. Set s3, hub, or both."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": cel(("has(self.s3) || has(self.hub)", "set at least one output: s3 or hub")),
    }

    s3: S3Output | None = Field(
        default=None,
        description="Object storage destination. It receives the adapter only; the run's checkpoints and "
        "TensorBoard logs go beside it, under `<parent>/.kubeft-runs/<name>/<uid>/` (status.runUri).",
    )
    hub: HubOutput | None = Field(default=None, description="Hugging Face Hub destination.")
    keep_checkpoints: bool = Field(
        default=False,
        description="Keep the run's checkpoints after a successful export. Left false: they are deleted "
        "once the adapter is exported; a failed or suspended run always keeps them.",
    )


class PromotionThreshold(ApiModel):
    """A bound on one final evaluation metric. Set min, max or both."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": cel(("has(self.min) || has(self.max)", "set min, max or both")),
    }

    metric: Literal["eval_loss", "eval_perplexity", "eval_accuracy", "eval_f1"] = Field(
        description="Final evaluation metric on the validation split, as in status.metrics: eval_loss, "
        "eval_perplexity (CAUSAL_LM, SEQ_2_SEQ_LM), eval_accuracy or eval_f1 (SEQ_CLS, TOKEN_CLS)."
    )
    min: float | None = Field(default=None, description="Promote only when the metric is at least this.")
    max: float | None = Field(default=None, description="Promote only when the metric is at most this.")


class PromotionSpec(ApiModel):
    """A gate between "training finished" and "the adapter is at spec.output".

    With a gate, the adapter is always exported to the run's own prefix (`<status.runUri>/adapter`)
    and copied to spec.output (S3, and the Hub when set) only when every threshold holds; condition
    Promoted says which way it went, with the numbers. The job is Succeeded either way.
    """

    thresholds: list[PromotionThreshold] = Field(
        min_length=1,
        max_length=8,
        description="Every bound must hold on the final evaluation, e.g. [{metric: eval_loss, max: 2.5}].",
    )


class TensorBoardSpec(ApiModel):
    """Stream TensorBoard event files to object storage while training runs."""

    uri: Uri = Field(
        description="s3://bucket/prefix for event files; open with `tensorboard --logdir <uri>`.",
        json_schema_extra=cel((S3_PREFIX_RULE, S3_PREFIX_MSG)),
    )
    flush_interval_seconds: int = Field(default=30, ge=1, le=3600, description="Upload new events this often.")


class ResumeFrom(ApiModel):
    """Start from the adapter weights of an earlier run. Set exactly one of job and uri."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": cel(("has(self.job) != has(self.uri)", "set exactly one of resumeFrom.job and .uri")),
    }

    job: Name | None = Field(
        default=None,
        description="A FineTuneJob in this namespace: its exported adapter when it succeeded, else its "
        "latest durable checkpoint. While it still runs, this job waits for it.",
    )
    uri: Uri | None = Field(
        default=None,
        description="An adapter or checkpoint directory: s3://bucket/prefix (read with spec.storage), or a "
        "path inside the trainer image.",
    )


# --------------------------------------------------------------------------------------- spec

# Fields that may change after creation; every other spec field is immutable (see README).
MUTABLE_FIELDS = ("suspend", "ttlSecondsAfterFinished")
_IMMUTABLE = (
    "model",
    "dataset",
    "task",
    "method",
    "training",
    "resources",
    "scheduling",
    "storage",
    "output",
    "tensorboard",
    "image",
    "activeDeadlineSeconds",
    "retryLimit",
    "resumeFrom",
    "volumes",
    "volumeMounts",
    "promotion",
)
_OPTIONAL_IMMUTABLE = (
    "scheduling",
    "storage",
    "tensorboard",
    "image",
    "activeDeadlineSeconds",
    "resumeFrom",
    "volumes",
    "volumeMounts",
    "promotion",
)
IMMUTABLE_MSG = (
    "is immutable once the job is created; only suspend and ttlSecondsAfterFinished may change. "
    "Create a new FineTuneJob to train with different settings"
)


class FineTuneJobSpec(ApiModel):
    """A parameter-efficient fine-tuning run: base model + data + method → adapter."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": cel(
            *methods.task_rules(),
            *[
                (contract.task_fields_rule(task), contract.task_fields_message(task), ".dataset.fields")
                for task in contract.TASK_FIELDS
            ],
            (
                "!has(self.dataset.fields.messages) || self.task == 'CAUSAL_LM'",
                "chat messages (spec.dataset.fields.messages) need task CAUSAL_LM",
                ".dataset.fields.messages",
            ),
            (
                "!has(self.dataset.fields.answer) || self.task == 'QUESTION_ANS'",
                "spec.dataset.fields.answer is only used by task QUESTION_ANS",
                ".dataset.fields.answer",
            ),
            (
                "!has(self.volumeMounts) || self.volumeMounts.all(m, has(self.volumes) && "
                "self.volumes.exists(v, v.name == m.name))",
                "each volume mount must name a volume in spec.volumes",
                ".volumeMounts",
            ),
            *promotion.cel_rules(),
            *[(f"has(self.{f}) == has(oldSelf.{f})", f"spec.{f} {IMMUTABLE_MSG}") for f in _OPTIONAL_IMMUTABLE],
        )
    }

    model: ModelSpec = Field(description="The base model checkpoint.")
    dataset: DatasetSpec = Field(description="Training (and validation) data.")
    task: Task = Field(description="CAUSAL_LM, SEQ_2_SEQ_LM, SEQ_CLS, TOKEN_CLS, QUESTION_ANS or FEATURE_EXTRACTION.")
    method: MethodSpec = Field(description="PEFT method and its parameters.")
    training: TrainingSpec = Field(description="Hyperparameters; set exactly one of epochs and maxSteps.")
    output: OutputSpec = Field(description="Where the adapter is written: s3, hub or both.")
    tensorboard: TensorBoardSpec | None = Field(
        default=None, description="Stream TensorBoard logs to S3. Left out: `<output.s3.uri>/tensorboard`."
    )
    promotion: PromotionSpec | None = Field(
        default=None,
        description="Copy the adapter to spec.output only when its final evaluation passes these thresholds; "
        "it is always kept at `<status.runUri>/adapter`. Needs spec.output.s3 and a validation split. "
        "Left out: the adapter is exported straight to spec.output.",
    )
    storage: StorageSpec | None = Field(default=None, description="S3 endpoint and credentials for s3:// URIs.")
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec, description="GPUs, CPU and memory per pod.")
    scheduling: SchedulingSpec | None = Field(
        default=None,
        description="Node selection, priority and Kueue queue. Fields left out take the operator's defaults "
        "(chart values trainer.defaults.*); a nodeSelector is merged into the default one, key by key.",
    )
    volumes: list[Volume] | None = Field(
        default=None,
        max_length=16,
        description="PersistentVolumeClaims and ConfigMaps for the trainer pod, e.g. a dataset on shared storage. "
        "Names are unique; mount them with spec.volumeMounts.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    volume_mounts: list[VolumeMount] | None = Field(
        default=None,
        max_length=16,
        description="Where the trainer container mounts spec.volumes; mount paths are unique.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["mountPath"]},
    )
    image: Annotated[str, StringConstraints(max_length=512)] | None = Field(
        default=None,
        description="Trainer image override; it must be one the operator allows (chart value "
        "operator.allowedImages), else the job fails with InvalidSpec. Left out: the operator's default.",
    )
    resume_from: ResumeFrom | None = Field(
        default=None,
        description="Continue training from an earlier run's adapter weights (a warm start). Only the weights "
        "carry over: the optimizer state, learning-rate schedule and step count start fresh, with this "
        "spec's training settings. The base model, task, method and the adapter's shape (rank, target "
        "modules, virtual tokens) must match, else the job fails with InvalidSpec or InvalidConfig. "
        "Left out: the run starts from freshly initialised weights, and resumes only its own checkpoints.",
    )
    suspend: bool = Field(default=False, description="Pause the run (its Job is suspended); set false to resume.")
    ttl_seconds_after_finished: int | None = Field(
        default=None, ge=0, description="Delete the FineTuneJob this long after it finished."
    )
    active_deadline_seconds: int | None = Field(
        default=None, ge=1, description="Fail the run once it has been active this long."
    )
    retry_limit: int = Field(
        default=3,
        ge=0,
        le=20,
        description="Retries after failures such as a crash or node loss. Configuration errors are never "
        "retried; a preempted, evicted or drained pod is retried without counting.",
    )


def immutable_field_rules() -> dict[str, str]:
    """Per-field transition rules, keyed by spec property; applied by the CRD generator."""
    return {f: f"spec.{f} {IMMUTABLE_MSG}" for f in _IMMUTABLE}
