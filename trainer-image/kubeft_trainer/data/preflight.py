"""The dataset preflight: what the tokenized data looks like, checked before the base model is loaded.

:func:`build` turns per-record facts gathered by :func:`kubeft_trainer.data.prepare` (untruncated
token lengths, why a record was dropped, class labels, a rendered chat) into a :class:`Report`:
records read / used / dropped per reason, a token-length histogram over fixed buckets and the share
truncated at `spec.dataset.maxLength`, the label distribution, and warnings. :func:`check` applies
`spec.dataset.preflight`; a failed threshold becomes :class:`~kubeft_trainer.errors.DatasetPreflightFailed`
(exit 64). The report's long form is JSON (:meth:`Report.wire`), its short form is `status.dataset`
(:meth:`Report.summary`), and :func:`markdown` is what TensorBoard shows. Pure: no I/O.
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
from collections.abc import Sequence
from typing import Any

from kubeft_operator.api import spec as api_spec
from kubeft_operator.api import status as api_status

# Upper bounds (tokens, inclusive) of the histogram's buckets; one open bucket follows the last.
# Fixed, so reports of different runs and datasets compare bucket for bucket.
BUCKETS = tuple(2**i for i in range(4, 18))
# Above this share truncated the report warns when spec.dataset.preflight sets no threshold.
WARN_TRUNCATED_FRACTION = 0.2
# A class with fewer than 1/this of the largest class's records is worth a warning.
IMBALANCE_RATIO = 10
# Classes listed in status.dataset.labels (the report has them all).
STATUS_LABELS = 20
CHAT_SAMPLE_CHARS = 4000

# Why a record is dropped (keys of `dropped`), and what that means for the user.
DROP_REASONS = {
    "empty": "no token to learn: the record is empty",
    "truncatedAway": "no token to learn once truncated at maxLength: the prompt alone fills it",
}
DEFAULT_THRESHOLDS = api_spec.DatasetPreflight()


@dataclasses.dataclass(frozen=True)
class Split:
    """Facts about one split: records read, their untruncated lengths, the kept ones, drop reasons."""

    read: int
    lengths: Sequence[int]
    dropped: dict[str, int]
    max_length: int

    @property
    def used(self) -> int:
        return self.read - sum(self.dropped.values())

    @property
    def truncated(self) -> int:
        return sum(1 for n in self.lengths if n > self.max_length)

    @property
    def truncated_fraction(self) -> float:
        return self.truncated / len(self.lengths) if self.lengths else 0.0

    def histogram(self) -> list[tuple[int | None, int]]:
        """(upper bound or None for the open bucket, count) for every bucket."""
        counts = [0] * (len(BUCKETS) + 1)
        for n in self.lengths:
            counts[bisect.bisect_left(BUCKETS, n)] += 1
        return list(zip([*BUCKETS, None], counts, strict=True))

    def token_lengths(self) -> api_status.TokenLengths:
        ordered = sorted(self.lengths) or [0]
        buckets = self.histogram()
        filled = [i for i, (_, count) in enumerate(buckets) if count]
        shown = buckets[filled[0] : filled[-1] + 1] if filled else []
        return api_status.TokenLengths(
            max_length=self.max_length,
            truncated=self.truncated,
            truncated_fraction=round(self.truncated_fraction, 4),
            p50=percentile(ordered, 0.5),
            p95=percentile(ordered, 0.95),
            max=ordered[-1],
            histogram=[api_status.LengthBucket(up_to=bound, count=count) for bound, count in shown],
        )

    def wire(self) -> dict[str, Any]:
        lengths = self.token_lengths().wire()
        lengths["mean"] = round(sum(self.lengths) / len(self.lengths), 2) if self.lengths else 0.0
        # The long form lists every bucket, empty ones included, so two reports line up.
        lengths["histogram"] = [{"upTo": bound, "count": count} for bound, count in self.histogram()]
        return {
            "recordsRead": self.read,
            "recordsUsed": self.used,
            "dropped": dict(self.dropped),
            "tokenLengths": lengths,
        }


@dataclasses.dataclass(frozen=True)
class Report:
    """The whole preflight: the training split, the validation split, labels, a chat sample, the verdict."""

    source: str
    shape: str
    train: Split
    validation: Split | None
    labels: dict[str, int] | None
    chat_sample: str | None
    thresholds: api_spec.DatasetPreflight
    warnings: tuple[str, ...]
    failure: str | None
    checked_at: str
    report_uri: str | None = None

    @property
    def result(self) -> str:
        return "Failed" if self.failure else "Warning" if self.warnings else "Passed"

    def summary(self) -> api_status.DatasetSummary:
        """The short form, for status.dataset."""
        labels = None
        if self.labels is not None:
            top = sorted(self.labels.items(), key=lambda kv: (-kv[1], kv[0]))[:STATUS_LABELS]
            labels = dict(top)
        return api_status.DatasetSummary(
            result=self.result,
            records_read=self.train.read,
            records_used=self.train.used,
            validation_records=self.validation.used if self.validation is not None else None,
            dropped={k: v for k, v in self.train.dropped.items() if v} or None,
            token_lengths=self.train.token_lengths(),
            labels=labels,
            warnings=list(self.warnings) or None,
            message=self.failure,
            report_uri=self.report_uri,
            checked_at=self.checked_at,
        )

    def wire(self) -> dict[str, Any]:
        """The long form, written as JSON to the run's artifacts."""
        return {
            "kind": "DatasetReport",
            "source": self.source,
            "shape": self.shape,
            "result": self.result,
            "message": self.failure,
            "warnings": list(self.warnings),
            "thresholds": {
                **self.thresholds.wire(),
                "warnTruncatedFraction": WARN_TRUNCATED_FRACTION,
            },
            "dropReasons": DROP_REASONS,
            "train": self.train.wire(),
            "validation": self.validation.wire() if self.validation is not None else None,
            "labels": self.labels,
            "chatSample": self.chat_sample,
            "checkedAt": self.checked_at,
        }


def percentile(ordered: Sequence[int], q: float) -> int:
    """Nearest-rank percentile of an ascending, non-empty sequence."""
    rank = max(1, -(-len(ordered) * q // 1))
    return int(ordered[int(rank) - 1])


def label_counts(names: Sequence[str], ids: Sequence[int]) -> dict[str, int]:
    """Records per class name, every class listed (0 for a class without records), in id order."""
    counts = collections.Counter(ids)
    return {name: counts.get(i, 0) for i, name in enumerate(names)}


def build(
    *,
    source: str,
    shape: str,
    train: Split,
    validation: Split | None,
    labels: dict[str, int] | None,
    chat_sample: str | None,
    thresholds: api_spec.DatasetPreflight | None,
    checked_at: str,
) -> Report:
    """Assemble the report and decide its result against `thresholds` (None: the defaults)."""
    limits = thresholds or DEFAULT_THRESHOLDS
    warnings = _warnings(train, labels=labels, limits=limits)
    return Report(
        source=source,
        shape=shape,
        train=train,
        validation=validation,
        labels=labels,
        chat_sample=chat_sample[:CHAT_SAMPLE_CHARS] if chat_sample is not None else None,
        thresholds=limits,
        warnings=tuple(warnings),
        failure=_failure(train, limits=limits),
        checked_at=checked_at,
    )


def _failure(train: Split, *, limits: api_spec.DatasetPreflight) -> str | None:
    problems = []
    if train.used < limits.min_records:
        dropped = ", ".join(f"{n} {DROP_REASONS.get(k, k)}" for k, n in train.dropped.items() if n)
        problems.append(
            f"{train.used} usable training records, fewer than spec.dataset.preflight.minRecords "
            f"({limits.min_records}); {train.read} read" + (f", dropped: {dropped}" if dropped else "")
        )
    if limits.max_truncated_fraction is not None and train.truncated_fraction > limits.max_truncated_fraction:
        lengths = train.token_lengths()
        problems.append(
            f"{train.truncated} of {len(train.lengths)} training records ({train.truncated_fraction:.0%}) are longer "
            f"than spec.dataset.maxLength ({train.max_length} tokens; median {lengths.p50}, p95 {lengths.p95}, "
            f"max {lengths.max}), more than spec.dataset.preflight.maxTruncatedFraction "
            f"({limits.max_truncated_fraction:g}); raise maxLength, shorten or split the long records, "
            "or raise the threshold"
        )
    return "; ".join(problems) or None


def _warnings(train: Split, *, labels: dict[str, int] | None, limits: api_spec.DatasetPreflight) -> list[str]:
    out = []
    if limits.max_truncated_fraction is None and train.truncated_fraction > WARN_TRUNCATED_FRACTION:
        out.append(
            f"{train.truncated_fraction:.0%} of the training records are truncated at maxLength "
            f"{train.max_length}; set spec.dataset.preflight.maxTruncatedFraction to fail such runs"
        )
    for reason, count in train.dropped.items():
        if count:
            out.append(f"{count} training records dropped: {DROP_REASONS.get(reason, reason)}")
    if labels:
        empty = [name for name, count in labels.items() if count == 0]
        if empty:
            out.append(f"{len(empty)} classes have no training record: {', '.join(empty[:10])}")
        present = [count for count in labels.values() if count]
        if present and max(present) >= IMBALANCE_RATIO * min(present):
            out.append(f"classes are imbalanced: the largest has {max(present)} records, the smallest {min(present)}")
    return out


def markdown(report: Report) -> str:
    """The report as a short Markdown text for TensorBoard's Text tab."""
    train = report.train
    lengths = train.token_lengths()
    lines = [
        f"**Dataset preflight: {report.result}** ({report.source}, shape {report.shape})",
        "",
        f"- records read {train.read}, used {train.used}"
        + (f", validation {report.validation.used}" if report.validation is not None else ""),
    ]
    for reason, count in train.dropped.items():
        if count:
            lines.append(f"- dropped {count}: {DROP_REASONS.get(reason, reason)}")
    lines.append(
        f"- token lengths: median {lengths.p50}, p95 {lengths.p95}, max {lengths.max}; "
        f"{lengths.truncated} ({lengths.truncated_fraction:.1%}) truncated at maxLength {lengths.max_length}"
    )
    if report.failure:
        lines.append(f"- **failed:** {report.failure}")
    lines += [f"- warning: {w}" for w in report.warnings]
    lines += ["", "| tokens up to | records |", "|---|---|"]
    lines += [f"| {b.up_to if b.up_to is not None else 'more'} | {b.count} |" for b in lengths.histogram]
    if report.labels:
        lines += ["", "| class | records |", "|---|---|"]
        lines += [f"| {name} | {count} |" for name, count in report.labels.items()]
    return "\n".join(lines)
