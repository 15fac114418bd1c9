"""Padding-free packing for causal LMs, and padding for everything else."""

from __future__ import annotations

import torch

from kubeft_trainer.data import collate

RECORDS = [
    {"input_ids": [5, 6, 7], "attention_mask": [1, 1, 1], "labels": [5, 6, 7]},
    {"input_ids": [8, 9], "attention_mask": [1, 1], "labels": [-100, 9]},
    {"input_ids": [10, 11, 12, 13], "attention_mask": [1, 1, 1, 1], "labels": [10, 11, 12, 13]},
]


def test_packing_concatenates_the_batch_into_one_row() -> None:
    batch = collate.PackingCollator()(RECORDS)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9, 10, 11, 12, 13]]
    assert "attention_mask" not in batch


def test_packing_restarts_position_ids_for_every_record() -> None:
    batch = collate.PackingCollator()(RECORDS)
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1, 0, 1, 2, 3]]


def test_packing_never_predicts_a_record_from_the_one_before() -> None:
    batch = collate.PackingCollator()(RECORDS)
    assert batch["labels"].tolist() == [[-100, 6, 7, -100, 9, -100, 11, 12, 13]]


def test_packing_gives_flash_attention_the_sequence_boundaries() -> None:
    batch = collate.PackingCollator(flash_attention_kwargs=True)(RECORDS)
    assert batch["cu_seq_lens_q"].tolist() == [0, 3, 5, 9]
    assert batch["cu_seq_lens_q"].dtype == torch.int32
    assert batch["max_length_k"] == 4


def test_padding_pads_ids_masks_and_labels_with_their_own_values() -> None:
    batch = collate.PadCollator(pad_token_id=0)(RECORDS[:2])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 9, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].tolist() == [[5, 6, 7], [-100, 9, -100]]


def test_padding_stacks_scalar_labels_and_pads_pair_columns() -> None:
    features = [
        {"input_ids": [1, 2], "pair_input_ids": [3], "pair_attention_mask": [1], "labels": 2},
        {"input_ids": [4], "pair_input_ids": [5, 6, 7], "pair_attention_mask": [1, 1, 1], "labels": 0},
    ]
    batch = collate.PadCollator(pad_token_id=9)(features)
    assert batch["labels"].tolist() == [2, 0]
    assert batch["pair_input_ids"].tolist() == [[3, 9, 9], [5, 6, 7]]
    assert batch["pair_attention_mask"].tolist() == [[1, 0, 0], [1, 1, 1]]


def test_padding_rounds_up_to_a_multiple() -> None:
    batch = collate.PadCollator(pad_token_id=0, pad_to_multiple_of=8)(RECORDS[:1])
    assert batch["input_ids"].shape == (1, 8)
