"""Measure the peak memory of a few LoRA/IA3... training steps on CPU, in a fresh process.

Run by test_fit_estimate.py as ``python -m tests.integration.trainer.fit_probe '<json>'``; prints
the peak resident memory the run added, in bytes. A fresh process per run; after the imports and a
warm-up, the kernel's high-water mark is reset to the current resident size (``/proc/self/clear_refs``),
so the difference is weights + adapter state + activations + the allocator's slack.
"""

from __future__ import annotations

import json
import pathlib
import sys

import peft
import torch
import transformers

from kubeft_operator.api import estimate


def _peft_config(run: estimate.Run) -> peft.PeftConfig:
    task = peft.TaskType.CAUSAL_LM
    targets: list[str] | str | None = list(run.target_modules) if run.target_modules else None
    if targets == ["all-linear"]:
        targets = "all-linear"
    if run.method == "lora":
        return peft.LoraConfig(task_type=task, r=run.rank, target_modules=targets, lora_dropout=0.05)
    if run.method == "ia3":
        return peft.IA3Config(task_type=task, target_modules=targets, feedforward_modules=run.feedforward_modules)
    if run.method == "promptTuning":
        return peft.PromptTuningConfig(task_type=task, num_virtual_tokens=run.num_virtual_tokens)
    raise ValueError(run.method)


def _warm_up() -> None:
    """One step of a minute model first: the kernels' libraries and thread pools load lazily, and are
    the process's cost, not the run's."""
    config = transformers.LlamaConfig(
        vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2
    )
    model = peft.get_peft_model(transformers.LlamaForCausalLM(config), peft.LoraConfig(task_type="CAUSAL_LM", r=2))
    ids = torch.randint(0, 64, (2, 8))
    model(input_ids=ids, labels=ids).loss.backward()
    torch.optim.AdamW([p for p in model.parameters() if p.requires_grad]).step()


def measure(shape: estimate.Shape, run: estimate.Run, *, steps: int = 3) -> tuple[int, int]:
    """(peak bytes added, trainable parameters) of ``steps`` AdamW steps."""
    torch.manual_seed(0)
    torch.set_num_threads(2)
    _warm_up()
    base = _reset_peak()
    config = transformers.LlamaConfig(
        vocab_size=shape.vocab_size,
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        num_key_value_heads=shape.num_key_value_heads,
        tie_word_embeddings=shape.tie_word_embeddings,
        max_position_embeddings=4096,
    )
    model = transformers.LlamaForCausalLM(config)
    model.config.use_cache = False
    if run.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model = peft.get_peft_model(model, _peft_config(run))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()
    for _ in range(steps):
        ids = torch.randint(0, shape.vocab_size, (run.batch_size, run.sequence_length))
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    peak = _status_bytes("VmHWM")
    return peak - base, trainable


def _status_bytes(field: str) -> int:
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise LookupError(field)


def _reset_peak() -> int:
    """Reset the kernel's high-water mark of resident memory to what is resident now, and return that.

    Measuring from the high-water mark of the imports and the warm-up instead undercounts by
    whatever they allocated and freed, as the run reuses that memory without raising the mark. A CI
    run measured 230-460 MiB less than a quiet machine that way, for the same six runs; this is the
    likely cause, and resetting the mark removes it either way.
    """
    pathlib.Path("/proc/self/clear_refs").write_text("5")
    return _status_bytes("VmRSS")


def main() -> None:
    doc = json.loads(sys.argv[1])
    shape = estimate.Shape(**doc["shape"])
    run = estimate.Run(**doc["run"])
    peak, trainable = measure(shape, run)
    print(json.dumps({"peak": peak, "trainable": trainable}))


if __name__ == "__main__":
    main()
