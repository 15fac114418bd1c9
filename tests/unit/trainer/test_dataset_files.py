"""Dataset files in every supported format read into the same records; bad files are named clearly."""

from __future__ import annotations

import pathlib

import pytest

from kubeft_trainer import errors
from kubeft_trainer.data import sources
from tests.integration.trainer import records

ROWS = [{"text": "the capital of france is paris", "label": "europe"}, {"text": "tokyo", "label": "asia"}]


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "parquet"])
def test_every_format_reads_the_same_records(fmt: str, tmp_path: pathlib.Path) -> None:
    path = records.write(tmp_path / f"data.{fmt}", ROWS, fmt=fmt)
    assert sources.load_file(path, fmt=fmt).to_list() == ROWS


def test_json_object_holding_one_list_of_records(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "data.json"
    path.write_text('{"version": 2, "data": [{"text": "a"}, {"text": "b"}]}')
    assert sources.load_file(path, fmt="json")["text"] == ["a", "b"]


def test_nested_fields_survive(tmp_path: pathlib.Path) -> None:
    rows = records.all_shapes(3, seed=0)
    ds = sources.load_file(records.write(tmp_path / "d.parquet", rows, fmt="parquet"), fmt="parquet")
    assert ds[0]["answer"] == rows[0]["answer"]
    assert ds[0]["messages"] == rows[0]["messages"]


def test_malformed_jsonl_is_dataset_invalid(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok"}\n{"text": \n')
    with pytest.raises(errors.DatasetInvalid, match=r"bad\.jsonl"):
        sources.load_file(path, fmt="jsonl")


def test_missing_file_is_dataset_not_found(tmp_path: pathlib.Path) -> None:
    with pytest.raises(errors.DatasetNotFound):
        sources.load_file(tmp_path / "absent.csv", fmt="csv")
