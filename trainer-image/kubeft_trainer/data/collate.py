"""Batch collators: padding-free packing for causal LMs, and padding for everything else.

:class:`PackingCollator` concatenates a batch into one row with position ids restarting at 0
for each record. Attention implementations that read packed position ids (SDPA and eager
through transformers' mask builder, flash-attention through the `cu_seq_lens_*` kwargs) keep
the records independent, so no compute or memory is spent on padding. The model must run with
`use_cache=False` (the pipeline sets it): with a cache, the mask builder ignores packing.
Called by the Trainer's data loader; built by :func:`kubeft_trainer.data.prepare`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from kubeft_trainer.data import encode

# Pad value for each padded sequence column; unknown columns pad with 0.
PAD_VALUES = {"labels": encode.IGNORE, "attention_mask": 0, "token_type_ids": 0}


class PackingCollator:
    """Flatten a batch of causal-LM records into one row with restarting position ids."""

    def __init__(self, *, flash_attention_kwargs: bool = False) -> None:
        self.flash_attention_kwargs = flash_attention_kwargs

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, Any]:
        input_ids: list[int] = []
        labels: list[int] = []
        positions: list[int] = []
        lengths: list[int] = []
        for f in features:
            ids = list(f["input_ids"])
            row_labels = list(f.get("labels", ids))
            input_ids += ids
            # The first token of a record is never predicted from the record before it.
            labels += [encode.IGNORE, *row_labels[1:]]
            positions += range(len(ids))
            lengths.append(len(ids))
        batch: dict[str, Any] = {
            "input_ids": torch.tensor([input_ids], dtype=torch.long),
            "labels": torch.tensor([labels], dtype=torch.long),
            "position_ids": torch.tensor([positions], dtype=torch.long),
        }
        if self.flash_attention_kwargs:
            cu = torch.tensor([0, *lengths], dtype=torch.int32).cumsum(0, dtype=torch.int32)
            batch.update(cu_seq_lens_q=cu, cu_seq_lens_k=cu, max_length_q=max(lengths), max_length_k=max(lengths))
        return batch


class PadCollator:
    """Right-pad every list column to the longest in the batch; stack scalar columns."""

    def __init__(self, *, pad_token_id: int, pad_to_multiple_of: int | None = None) -> None:
        self.pad_token_id = pad_token_id
        self.multiple = pad_to_multiple_of

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, Any]:
        batch: dict[str, Any] = {}
        for key in features[0]:
            values = [f[key] for f in features]
            if isinstance(values[0], list | tuple):
                batch[key] = self._pad(values, self._pad_value(key))
            else:
                batch[key] = torch.tensor(values)
        return batch

    def _pad_value(self, key: str) -> int:
        base = key.removeprefix("pair_")
        if base == "input_ids":
            return self.pad_token_id
        return PAD_VALUES.get(base, 0)

    def _pad(self, rows: list[Sequence[int]], value: int) -> torch.Tensor:
        width = max(len(r) for r in rows)
        if self.multiple:
            width = -(-width // self.multiple) * self.multiple
        out = torch.full((len(rows), width), value, dtype=torch.long)
        for i, row in enumerate(rows):
            out[i, : len(row)] = torch.as_tensor(row, dtype=torch.long)
        return out
