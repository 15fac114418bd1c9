"""Artifact size: what each PEFT method exports, against the base model, and how long export + upload take.

For every method kubeft offers, the trainer's own stages build the adapter on the benchmark
model (``kubeft_trainer.config.parse`` → ``model.build`` with the method's defaults) and
``kubeft_trainer.export.export`` stages it (adapter, card, metrics, manifest) and uploads it to a
moto S3 server on loopback. The baseline is the full checkpoint uploaded to the same server with
the same transfer settings, which is what exporting a fully fine-tuned model would cost.

The benchmark model is small, so the fractions are also projected to Llama-3-8B's shape by
counting each method's trainable parameters on a meta-device model (no memory, no weights), in
bytes of the dtypes a GPU run has: a bf16 base, fp32 LoRA-style adapters.

Called by :mod:`benchmarks.run`; ``python -m benchmarks.artifact_size --help`` runs it alone.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pathlib
import time
from typing import Any
from unittest import mock

from benchmarks import measures, s3server, trainer_throughput, workdirs
from kubeft_operator.api import methods

METHODS = tuple(methods.METHODS)
PROJECTION_PRESET = "llama-8b"


def method_spec(method: str, *, model_dir: pathlib.Path, s3: s3server.S3Server) -> dict[str, Any]:
    """A TrainerConfig for `method` with kubeft's defaults for it; the dataset is never read here."""
    spec: dict[str, Any] = {
        "model": {"source": str(model_dir)},
        "dataset": {"source": "/nonexistent/train.jsonl", "fields": {"text": "text"}},
        "task": "CAUSAL_LM",
        "method": {"type": method},
        "training": {"maxSteps": 1},
        "storage": {"endpoint": s3.endpoint},
        "output": {"s3": {"uri": f"s3://{s3.bucket}/artifacts/{method}"}},
    }
    if method == "qlora":
        spec["model"]["quantization"] = {"bits": 4}
    return {"apiVersion": "kubeft.io/v1alpha1", "kind": "TrainerConfig", "metadata": {"name": method}, "spec": spec}


def _files_bytes(directory: pathlib.Path, pattern: str) -> int:
    return sum(p.stat().st_size for p in directory.glob(pattern) if p.is_file())


def measure_method(
    method: str, *, model_dir: pathlib.Path, s3: s3server.S3Server, workdir: pathlib.Path, repeats: int
) -> dict[str, Any]:
    from kubeft_trainer import config as trainer_config
    from kubeft_trainer import errors, export, storage
    from kubeft_trainer import model as model_stage
    from kubeft_trainer.model import base

    cfg = trainer_config.parse(
        method_spec(method, model_dir=model_dir, s3=s3), environ={"KUBEFT_WORKDIR": str(workdir / method)}
    )
    try:
        model_stage.check_runtime(cfg)
    except errors.TrainerError as exc:
        return {"method": method, "skipped": f"{type(exc).__name__}: {exc}"}
    location = base.resolve(cfg)
    tokenizer = base.load_tokenizer(cfg.spec.model, location)
    model = model_stage.build(cfg, location, tokenizer=tokenizer, labels=None, total_steps=1)
    client = storage.client(cfg.spec.storage)
    seconds = []
    artifact = None
    for _ in range(repeats):
        start = time.perf_counter()
        artifact = export.export(cfg, model, metrics={}, labels=None, step=1, s3_client=client).artifact
        seconds.append(time.perf_counter() - start)
    assert artifact is not None
    trainable, total = model.get_nb_trainable_parameters()
    return {
        "method": method,
        "adapter_bytes": _files_bytes(cfg.export_dir, "adapter_model.safetensors"),
        "artifact_bytes": artifact.size_bytes,
        "uploaded_bytes": s3.prefix_bytes(f"artifacts/{method}/"),
        "trainable_params": trainable,
        "total_params": total,
        "export_seconds": measures.median(seconds),
        "export_seconds_all": seconds,
    }


def upload_full_model(model_dir: pathlib.Path, *, s3: s3server.S3Server, repeats: int) -> dict[str, Any]:
    """The baseline: the whole checkpoint through the trainer's own uploader, same server and settings."""
    from kubeft_trainer import storage

    client = s3.client()
    seconds = []
    for i in range(repeats):
        start = time.perf_counter()
        storage.upload_dir(client, model_dir, storage.S3Uri(bucket=s3.bucket, key=f"full-model/{i}"))
        seconds.append(time.perf_counter() - start)
    return {
        "model_bytes": _files_bytes(model_dir, "*.safetensors"),
        "upload_seconds": measures.median(seconds),
        "upload_seconds_all": seconds,
    }


def project(preset_name: str = PROJECTION_PRESET) -> dict[str, Any]:
    """Trainable parameters and their bytes for each method (kubeft's defaults) on a meta-device model of
    `preset_name`'s shape, in the dtypes a GPU run has: the base in the preset's dtype (bf16, what the
    trainer loads with `dtype: auto` on a bf16 GPU), the adapter in whatever dtype peft then gives it
    (fp32 for LoRA-style weights, which peft upcasts; the base's dtype for prompt embeddings)."""
    import peft
    import torch
    import transformers

    from kubeft_trainer import model as model_stage

    preset = trainer_throughput.PRESETS[preset_name]
    config = transformers.LlamaConfig(**preset.llama_config())
    out: dict[str, Any] = {}
    default_dtype = torch.get_default_dtype()
    for method in METHODS:
        if method == "qlora":
            continue  # the same adapter as lora; the base checkpoint it applies to is the same bf16 one
        torch.set_default_dtype(getattr(torch, preset.dtype))
        try:
            with torch.device("meta"):
                model = transformers.LlamaForCausalLM(config)
                peft_config = model_stage.builder(method)(
                    methods.MethodSpec(type=method), task_type="CAUSAL_LM", model=model, total_steps=100, location=""
                )
                wrapped = peft.get_peft_model(model, peft_config)
        finally:
            torch.set_default_dtype(default_dtype)
        sizes: dict[str, dict[str, int]] = {"trainable": {}, "base": {}}
        for param in wrapped.parameters():
            part = sizes["trainable" if param.requires_grad else "base"]
            dtype = str(param.dtype).removeprefix("torch.")
            part[dtype] = part.get(dtype, 0) + param.numel() * param.element_size()
        trainable, total = wrapped.get_nb_trainable_parameters()
        out[method] = {
            "trainable_params": trainable,
            "base_params": total - trainable,
            "trainable_bytes": sum(sizes["trainable"].values()),
            "base_bytes": sum(sizes["base"].values()),
            "trainable_dtypes": sorted(sizes["trainable"]),
            "base_dtypes": sorted(sizes["base"]),
        }
    return {"preset": preset_name, "methods": out}


def run(
    *, quick: bool, workdir: pathlib.Path, model_dir: pathlib.Path | None = None, log: Any = print
) -> dict[str, Any]:
    repeats = 2 if quick else 5
    if model_dir is None:
        preset = trainer_throughput.PRESETS["cpu-small"]
        model_dir = trainer_throughput.build_model(workdir / "model", preset, device="cpu")
    log(f"artifact size: {len(METHODS)} methods on {model_dir}, export x{repeats}")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with s3server.running() as s3, mock.patch.dict(os.environ, s3.env):
        baseline = upload_full_model(model_dir, s3=s3, repeats=repeats)
        methods = []
        for method in METHODS:
            result = measure_method(method, model_dir=model_dir, s3=s3, workdir=workdir, repeats=repeats)
            if "skipped" not in result:
                result["fraction_of_base"] = result["adapter_bytes"] / baseline["model_bytes"]
                result["export_time_ratio"] = measures.ratio(result["export_seconds"], baseline["upload_seconds"])
                log(
                    f"  {method:13s} {result['adapter_bytes']:>10,} B  {100 * result['fraction_of_base']:7.3f}% "
                    f"of base  export {result['export_seconds'] * 1000:6.0f} ms"
                )
            else:
                log(f"  {method:13s} skipped: {result['skipped'][:100]}")
            methods.append(result)
    projection = project()
    return {
        "model_dir": str(model_dir),
        "repeats": repeats,
        "baseline": baseline,
        "methods": methods,
        "projection": projection,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer export repeats")
    parser.add_argument("--model", type=pathlib.Path, help="a saved checkpoint to use (default: build cpu-small)")
    parser.add_argument("--workdir", type=pathlib.Path, help="keep the staged exports here")
    parser.add_argument("--json", type=pathlib.Path, help="write the results here")
    args = parser.parse_args(argv)
    with workdirs.workdir(args.workdir) as workdir:
        summary = run(quick=args.quick, workdir=workdir, model_dir=args.model)
    text = json.dumps(summary, indent=2)
    if args.json:
        args.json.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
