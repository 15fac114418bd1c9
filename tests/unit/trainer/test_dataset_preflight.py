"""The dataset preflight report: counts, the token-length histogram, truncation, labels, thresholds."""

from __future__ import annotations

import json

import pytest
import transformers

from hack import tiny_models
from kubeft_operator.api import spec as api_spec
from kubeft_trainer import dataset_report, errors
from kubeft_trainer.data import encode, preflight

AT_MOST_20_PERCENT = api_spec.DatasetPreflight(max_truncated_fraction=0.2)


def split(lengths: list[int], *, max_length: int = 64, dropped: dict[str, int] | None = None) -> preflight.Split:
    dropped = dropped or {}
    return preflight.Split(
        read=len(lengths) + sum(dropped.values()), lengths=lengths, dropped=dropped, max_length=max_length
    )


def report(
    train: preflight.Split,
    *,
    thresholds: api_spec.DatasetPreflight | None = None,
    labels: dict[str, int] | None = None,
) -> preflight.Report:
    return preflight.build(
        source="data.jsonl",
        shape="text",
        train=train,
        validation=None,
        labels=labels,
        chat_sample=None,
        thresholds=thresholds,
        checked_at="2025-01-01T00:00:00Z",
    )


@pytest.mark.parametrize(
    ("length", "want_bound"),
    [(1, 16), (16, 16), (17, 32), (512, 512), (513, 1024), (131072, 131072), (131073, None)],
)
def test_a_length_falls_in_the_smallest_bucket_that_holds_it(length: int, want_bound: int | None) -> None:
    buckets = split([length]).histogram()
    assert [bound for bound, count in buckets if count] == [want_bound]


def test_status_histogram_spans_the_first_to_the_last_filled_bucket() -> None:
    lengths = split([20, 30, 100, 100]).token_lengths()
    assert [(b.up_to, b.count) for b in lengths.histogram] == [(32, 2), (64, 0), (128, 2)]


def test_the_full_report_lists_every_bucket_so_reports_line_up() -> None:
    wire = split([20]).wire()
    assert len(wire["tokenLengths"]["histogram"]) == len(preflight.BUCKETS) + 1
    assert wire["tokenLengths"]["histogram"][-1] == {"upTo": None, "count": 0}


def test_truncated_counts_records_longer_than_max_length() -> None:
    lengths = split([10, 64, 65, 200], max_length=64).token_lengths()
    assert (lengths.truncated, lengths.truncated_fraction, lengths.max) == (2, 0.5, 200)


@pytest.mark.parametrize(("q", "want"), [(0.5, 3), (0.95, 5), (0.0, 1), (1.0, 5)])
def test_percentiles_are_nearest_rank(q: float, want: int) -> None:
    assert preflight.percentile([1, 2, 3, 4, 5], q) == want


def test_records_used_are_read_less_dropped_and_each_reason_is_counted() -> None:
    summary = report(split([10, 10], dropped={"empty": 1, "truncatedAway": 2})).summary()
    assert (summary.records_read, summary.records_used) == (5, 2)
    assert summary.dropped == {"empty": 1, "truncatedAway": 2}


def test_default_thresholds_only_warn_about_truncation() -> None:
    r = report(split([100, 100, 10], max_length=64))
    assert r.result == "Warning" and r.failure is None
    assert "67% of the training records are truncated" in r.warnings[0]
    dataset_report.enforce(r)


def test_truncation_above_the_threshold_fails_with_the_numbers_and_what_to_do() -> None:
    r = report(
        split([100, 100, 10, 10], max_length=64), thresholds=api_spec.DatasetPreflight(max_truncated_fraction=0.2)
    )
    assert r.result == "Failed"
    with pytest.raises(errors.DatasetPreflightFailed) as info:
        dataset_report.enforce(r)
    assert info.value.reason == "DatasetPreflightFailed" and info.value.exit_code == errors.EXIT_USER_ERROR
    assert "2 of 4 training records (50%) are longer than spec.dataset.maxLength (64 tokens" in info.value.message
    assert "raise maxLength" in info.value.message


def test_truncation_at_the_threshold_passes() -> None:
    r = report(
        split([100, 10, 10, 10, 10], max_length=64), thresholds=api_spec.DatasetPreflight(max_truncated_fraction=0.2)
    )
    assert r.result == "Passed"


def test_too_few_usable_records_fails_naming_the_drops() -> None:
    r = report(split([10], dropped={"empty": 3}), thresholds=api_spec.DatasetPreflight(min_records=2))
    assert r.failure is not None
    assert "1 usable training records, fewer than spec.dataset.preflight.minRecords (2); 4 read" in r.failure
    assert "3 no token to learn: the record is empty" in r.failure


def test_no_usable_record_fails_by_default() -> None:
    assert report(split([], dropped={"truncatedAway": 2})).result == "Failed"


def test_label_counts_list_every_class_in_id_order() -> None:
    assert preflight.label_counts(["neg", "neu", "pos"], [2, 0, 2]) == {"neg": 1, "neu": 0, "pos": 2}


def test_empty_and_rare_classes_are_warned_about() -> None:
    r = report(split([10] * 22), labels={"a": 20, "b": 2, "c": 0})
    assert any("1 classes have no training record: c" in w for w in r.warnings)
    assert any("imbalanced" in w for w in r.warnings)


def test_status_lists_the_most_frequent_classes_only() -> None:
    labels = {f"c{i:02d}": i for i in range(30)}
    summary = report(split([10]), labels=labels).summary()
    assert summary.labels is not None and len(summary.labels) == preflight.STATUS_LABELS
    assert next(iter(summary.labels)) == "c29"


def test_the_full_report_is_json_with_thresholds_and_reasons() -> None:
    doc = json.loads(json.dumps(report(split([10])).wire()))
    assert doc["kind"] == "DatasetReport" and doc["result"] == "Passed"
    assert doc["thresholds"] == {"minRecords": 1, "warnTruncatedFraction": 0.2}
    assert set(doc["dropReasons"]) == {"empty", "truncatedAway"}


def test_markdown_shows_the_verdict_histogram_and_classes() -> None:
    text = preflight.markdown(report(split([20, 100]), labels={"a": 1, "b": 1}))
    assert text.startswith("**Dataset preflight: Warning**")
    assert "| 32 | 1 |" in text and "| 128 | 1 |" in text and "| a | 1 |" in text


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> transformers.PreTrainedTokenizerBase:
    path = tiny_models.build_causal_lm(tmp_path_factory.mktemp("llm") / "m")
    return transformers.AutoTokenizer.from_pretrained(str(path))


def test_measured_length_is_the_untruncated_length_of_the_encoded_text(
    tokenizer: transformers.PreTrainedTokenizerBase,
) -> None:
    encoder = encode.Encoder(tokenizer, {"text": "text"}, max_length=8)
    batch = {"text": ["short", "a much longer sentence with many many words in it for sure"]}
    lengths = encoder.lengths_for_shape("text")(batch)["length"]
    full = encode.Encoder(tokenizer, {"text": "text"}, max_length=10_000).text(batch)["input_ids"]
    assert lengths == [len(ids) for ids in full]
    assert lengths[1] > 8


def test_measured_chat_length_matches_the_rendered_template(tokenizer: transformers.PreTrainedTokenizerBase) -> None:
    encoder = encode.Encoder(tokenizer, {"messages": "messages"}, max_length=10_000)
    chat = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello there"}]
    (length,) = encoder.lengths_for_shape("chat")({"messages": [chat]})["length"]
    assert length == len(encoder.chat({"messages": [chat]})["input_ids"][0])
