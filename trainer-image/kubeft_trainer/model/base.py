"""Load the base checkpoint and its tokenizer from a Hub id, an s3:// prefix or a local path.

Hub downloads use HF_TOKEN (or the token file huggingface_hub finds) and the pinned revision;
s3:// checkpoints are mirrored into the cache under HF_HOME so a shared volume serves every job;
`trust_remote_code` is off unless the spec turns it on. `quantization` loads the weights with
bitsandbytes on the GPU; without one that is QuantizationUnavailable (exit 64). Under FSDP only
one process per node reads the weights (the others get them by broadcast when the Trainer wraps
the model), and 4-bit weights are stored in the compute dtype so FSDP can shard them. Called by
:func:`kubeft_trainer.model.build` and the pipeline (tokenizer first, for the data stage).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import pathlib
from typing import Any

import torch
import transformers

from kubeft_operator.api import spec as api_spec
from kubeft_trainer import config as trainer_config
from kubeft_trainer import devices, errors, storage

log = logging.getLogger(__name__)

AUTO_CLASSES = {
    "CAUSAL_LM": "AutoModelForCausalLM",
    "SEQ_2_SEQ_LM": "AutoModelForSeq2SeqLM",
    "SEQ_CLS": "AutoModelForSequenceClassification",
    "TOKEN_CLS": "AutoModelForTokenClassification",
    "QUESTION_ANS": "AutoModelForQuestionAnswering",
    "FEATURE_EXTRACTION": "AutoModel",
}


def resolve(cfg: trainer_config.TrainerConfig) -> str:
    """A path or Hub id `from_pretrained` can load: s3:// prefixes are downloaded first."""
    source = cfg.spec.model.source
    if storage.is_s3(source):
        uri = storage.S3Uri.parse(source)
        dest = cfg.cache_dir / "models" / uri.bucket / uri.key
        try:
            found = storage.download_prefix(storage.client(cfg.spec.storage), uri, dest)
        except Exception as exc:
            if storage.error_code(exc) == "NoSuchBucket" or storage.is_permanent(exc):
                raise errors.ModelNotFound(f"cannot read model {source}: {storage.error_code(exc) or exc}") from exc
            raise
        if not found:
            raise errors.ModelNotFound(f"no objects under {source}; upload a save_pretrained directory there")
        log.info("model %s mirrored into %s", source, dest)
        return str(dest)
    if source.startswith("/") and not pathlib.Path(source, "config.json").is_file():
        raise errors.ModelNotFound(f"{source} holds no config.json; point spec.model.source at a saved checkpoint")
    return source


def _hub_kwargs(model_spec: api_spec.ModelSpec, location: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"trust_remote_code": model_spec.trust_remote_code}
    if location == model_spec.source and not location.startswith("/"):
        import huggingface_hub

        kwargs["revision"] = model_spec.revision
        kwargs["token"] = huggingface_hub.get_token()
    return kwargs


def load_tokenizer(model_spec: api_spec.ModelSpec, location: str) -> Any:
    try:
        tok = transformers.AutoTokenizer.from_pretrained(location, **_hub_kwargs(model_spec, location))
    except (OSError, ValueError) as exc:
        raise errors.ModelNotFound(f"cannot load the tokenizer of {model_spec.source}: {exc}") from exc
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
    return tok


def load_model(
    cfg: trainer_config.TrainerConfig, location: str, *, labels: list[str] | None, tokenizer: Any
) -> transformers.PreTrainedModel:
    """The base model with the head the task needs, in the dtype and attention implementation chosen."""
    spec = cfg.spec
    auto = getattr(transformers, AUTO_CLASSES[spec.task])
    kwargs = _hub_kwargs(spec.model, location)
    kwargs["dtype"] = load_dtype(spec.model.dtype)
    if labels is not None:
        kwargs.update(
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={name: i for i, name in enumerate(labels)},
        )
    fsdp = cfg.parallelism == "fsdp"
    if spec.model.quantization is not None:
        kwargs.update(quantization_kwargs(spec.model.quantization, fsdp=fsdp))
    elif fsdp:
        # What `accelerate launch --use_fsdp --fsdp_cpu_ram_efficient_loading` would export: transformers
        # then reads the checkpoint in each node's first process only (the others hold empty tensors
        # until FSDP broadcasts rank 0's); arguments.fsdp_config asks accelerate for that broadcast.
        os.environ.update(ACCELERATE_USE_FSDP="true", FSDP_CPU_RAM_EFFICIENT_LOADING="true")
    try:
        model: transformers.PreTrainedModel = _from_pretrained(auto, location, kwargs)
    except (OSError, ValueError) as exc:
        if "bitsandbytes" in str(exc):
            raise errors.QuantizationUnavailable(f"cannot quantize {spec.model.source}: {exc}") from exc
        raise errors.ModelNotFound(f"cannot load {spec.model.source} as {AUTO_CLASSES[spec.task]}: {exc}") from exc
    # Training never reuses a KV cache, and with one the mask builder ignores packed position ids.
    model.config.use_cache = False
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    log.info(
        "loaded %s as %s (%s, attention %s)",
        spec.model.source,
        type(model).__name__,
        next(model.parameters()).dtype,
        getattr(model.config, "_attn_implementation", "?"),
    )
    return model


def _from_pretrained(auto: Any, location: str, kwargs: dict[str, Any]) -> Any:
    """Prefer SDPA attention; fall back to the model's default where it has no SDPA path."""
    try:
        return auto.from_pretrained(location, attn_implementation=preferred_attention(), **kwargs)
    except ValueError as exc:
        if "attn_implementation" not in str(exc) and "does not support" not in str(exc):
            raise
        log.info("%s; using the default attention", exc)
        return auto.from_pretrained(location, **kwargs)


def preferred_attention() -> str:
    """flash_attention_2 when installed on a CUDA machine (packed rows without a mask), else SDPA."""
    if torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def load_dtype(dtype: str) -> torch.dtype:
    if dtype == "auto":
        return torch.bfloat16 if devices.bf16_supported() else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]


def quantization_kwargs(q: api_spec.Quantization, *, fsdp: bool = False) -> dict[str, Any]:
    """bitsandbytes settings; under FSDP 4-bit weights are stored in the compute dtype (a float
    dtype FSDP can shard, the same as the other weights of a unit), not in uint8."""
    if not torch.cuda.is_available():
        raise errors.QuantizationUnavailable(
            "spec.model.quantization (and method qlora) needs a CUDA GPU for bitsandbytes, and this pod has none; "
            "request one with spec.resources.gpus, or use method lora without quantization"
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise errors.QuantizationUnavailable("bitsandbytes is not installed in the trainer image")
    if q.bits == 4:
        compute = torch.bfloat16 if devices.bf16_supported() else torch.float16
        # transformers ships BitsAndBytesConfig.__init__ without annotations.
        config = transformers.BitsAndBytesConfig(  # type: ignore[no-untyped-call]
            load_in_4bit=True,
            bnb_4bit_quant_type=q.quant_type,
            bnb_4bit_use_double_quant=q.double_quant,
            bnb_4bit_compute_dtype=compute,
            bnb_4bit_quant_storage=compute if fsdp else torch.uint8,
        )
    else:
        config = transformers.BitsAndBytesConfig(load_in_8bit=True)  # type: ignore[no-untyped-call]
    # Each rank loads its quantized copy onto its own GPU (LOCAL_RANK), not all onto cuda:0.
    kwargs: dict[str, Any] = {"quantization_config": config, "device_map": {"": devices.local_rank()}}
    if fsdp and q.bits == 4:
        kwargs["dtype"] = compute  # the unquantized weights in the storage dtype too: one dtype per FSDP unit
    return kwargs
