"""Which S3 and Hub endpoints a FineTuneJob may name (SSRF guard)."""

from __future__ import annotations

import dataclasses

import pytest

from kubeft_operator import config
from kubeft_operator.api import spec as spec_models
from kubeft_operator.builders import endpoints

BASE = {
    "model": {"source": "org/model"},
    "dataset": {"source": "s3://data/train.jsonl", "fields": {"text": "text"}},
    "task": "CAUSAL_LM",
    "method": {"type": "lora"},
    "training": {"maxSteps": 5},
    "output": {"s3": {"uri": "s3://adapters/run"}},
}
STRICT = config.Settings()
LENIENT = dataclasses.replace(STRICT, allow_private_endpoints=True)


def _spec(storage: str | None = None, hub: str | None = None) -> spec_models.FineTuneJobSpec:
    doc = dict(BASE)
    if storage:
        doc["storage"] = {"endpoint": storage}
    if hub:
        doc["output"] = {"hub": {"repo": "org/adapter", "tokenSecretRef": {"name": "t"}, "endpoint": hub}}
    return spec_models.FineTuneJobSpec.model_validate(doc)


@pytest.mark.parametrize(
    ("storage", "hub", "settings", "want"),
    [
        (None, None, STRICT, None),
        ("https://s3.eu-west-1.amazonaws.com", None, STRICT, None),
        ("https://minio.storage.svc.cluster.local:9000", None, STRICT, None),
        ("http://8.8.8.8:9000", None, STRICT, None),
        ("http://127.0.0.1:9000", None, STRICT, "spec.storage.endpoint http://127.0.0.1:9000 is a loopback address"),
        ("http://localhost:9000", None, STRICT, "is a loopback address"),
        ("http://10.0.3.7:9000", None, STRICT, "is a private address"),
        ("http://[::1]:9000", None, STRICT, "is a loopback address"),
        ("http://169.254.169.254", None, STRICT, "link-local address (cloud metadata)"),
        ("http://169.254.169.254", None, LENIENT, "link-local address (cloud metadata)"),
        ("http://[fe80::1]", None, LENIENT, "link-local"),
        ("http://127.0.0.1:9000", None, LENIENT, None),
        ("http://10.0.3.7:9000", None, LENIENT, None),
        (None, "http://192.168.1.20:8080", STRICT, "spec.output.hub.endpoint http://192.168.1.20:8080 is a private"),
        (None, "https://huggingface.co", STRICT, None),
    ],
)
def test_endpoint_policy(storage, hub, settings, want):
    got = endpoints.problem(_spec(storage, hub), settings)
    if want is None:
        assert got is None
    else:
        assert got is not None and want in got


def test_refusal_says_how_to_allow_private_stores():
    message = endpoints.problem(_spec("http://10.1.2.3:9000"), STRICT)
    assert message is not None and "operator.allowPrivateEndpoints=true" in message
