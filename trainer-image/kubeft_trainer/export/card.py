"""README.md model card for the exported adapter: base model, method, data, hyperparameters, metrics.

Pure text rendering; called by :mod:`kubeft_trainer.export`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from kubeft_operator.api import methods
from kubeft_operator.api import spec as api_spec

AUTO_PEFT = {
    "CAUSAL_LM": "AutoPeftModelForCausalLM",
    "SEQ_2_SEQ_LM": "AutoPeftModelForSeq2SeqLM",
    "SEQ_CLS": "AutoPeftModelForSequenceClassification",
    "TOKEN_CLS": "AutoPeftModelForTokenClassification",
    "QUESTION_ANS": "AutoPeftModelForQuestionAnswering",
    "FEATURE_EXTRACTION": "AutoPeftModelForFeatureExtraction",
}


def render(
    spec: api_spec.FineTuneJobSpec,
    *,
    name: str,
    metrics: Mapping[str, float],
    labels: Sequence[str] | None,
    step: int,
) -> str:
    method = spec.method
    params = methods.params_of(method)
    auto = AUTO_PEFT[spec.task]
    training = spec.training
    load_kwargs = f", num_labels={len(labels)}" if labels is not None and spec.task in ("SEQ_CLS", "TOKEN_CLS") else ""
    lines = [
        "---",
        f"base_model: {spec.model.source}",
        "library_name: peft",
        "tags:",
        f"- {method.type}",
        f"- {spec.task.lower()}",
        "- kubeft",
        "---",
        "",
        f"# {name}",
        "",
        f"A {method.type} adapter for `{spec.model.source}` (revision `{spec.model.revision}`), task `{spec.task}`,",
        "trained by kubeft. Only the adapter is here; the base model is loaded separately.",
        "",
        "## Use",
        "",
        "```python",
        f"from peft import {auto}",
        "",
        f'model = {auto}.from_pretrained("path/to/this/directory"{load_kwargs})',
        "```",
        "",
    ]
    if spec.model.source.startswith("s3://"):
        lines += [
            f"The base model lives in object storage ({spec.model.source}): download it, then load the adapter",
            "with `peft.PeftModel.from_pretrained(base_model, 'path/to/this/directory')`.",
            "",
        ]
    lines += [
        "## Training data",
        "",
        f"- source: `{spec.dataset.source}` ({spec.dataset.format})",
        f"- fields: {', '.join(f'{k}=`{v}`' for k, v in spec.dataset.fields.wire().items())}",
        f"- max length: {spec.dataset.max_length} tokens, packing: {spec.dataset.packing}",
    ]
    if labels is not None:
        lines.append(f"- labels (id order): {', '.join(labels)}")
    lines += [
        "",
        "## Method",
        "",
        "| parameter | value |",
        "|---|---|",
        f"| type | {method.type} |",
        *[f"| {k} | {v} |" for k, v in params.wire().items()],
        "",
        "## Hyperparameters",
        "",
        "| parameter | value |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in training.wire().items() if not isinstance(v, dict)],
        f"| steps trained | {step} |",
        "",
        "## Metrics",
        "",
        "| metric | value |",
        "|---|---|",
        *[f"| {k} | {v:.6g} |" for k, v in sorted(metrics.items())],
        "",
    ]
    return "\n".join(lines)
