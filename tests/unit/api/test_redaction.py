"""Secrets in a trainer's failure text never reach status, Events or logs (api/redaction.py)."""

from __future__ import annotations

import pytest

from kubeft_operator.api import redaction


@pytest.mark.parametrize(
    ("text", "leaked"),
    [
        ("botocore: InvalidAccessKeyId AKIAIOSFODNN7EXAMPLE does not exist", "AKIAIOSFODNN7EXAMPLE"),
        ("401 for https://hub/api?x=1 with hf_abcdefghijklmnopqrstuvwxyz123456", "hf_abcdefghijklmnopqrstuvwxyz123456"),
        ("Authorization: Bearer abc.DEF-123_456~xyz", "abc.DEF-123_456~xyz"),
        ("token eyJhbGciOiJSUzI1.eyJpc3MiOiJrdWJl.c2lnbmF0dXJlLXBhcnQ in header", "eyJhbGciOiJSUzI1"),
        ("aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI"),
        ('{"password": "hunter2-but-longer", "user": "me"}', "hunter2-but-longer"),
        ("X-Amz-Signature: 0123456789abcdef", "0123456789abcdef"),
        ("api_key: sk-live-0000", "sk-live-0000"),
    ],
)
def test_credential_shaped_text_is_masked(text: str, leaked: str) -> None:
    out = redaction.redact(text)
    assert leaked not in out
    assert redaction.MASK in out


def test_known_secret_values_are_masked_wherever_they_appear() -> None:
    out = redaction.redact("could not open s3://b/k with key s3cr3t-value (s3cr3t-value)", ["s3cr3t-value", "", "ab"])
    assert out == "could not open s3://b/k with key [REDACTED] ([REDACTED])"


@pytest.mark.parametrize(
    "text",
    [
        "dataset s3://bucket/data/train.jsonl not found (NoSuchKey)",
        "loss became nan at step 12 (learning rate 1.0)",
        "tokenizer has no pad token; set dataset.fields",
        "spec.method.lora.r: Input should be greater than 0",
    ],
)
def test_ordinary_messages_are_untouched(text: str) -> None:
    assert redaction.redact(text) == text
