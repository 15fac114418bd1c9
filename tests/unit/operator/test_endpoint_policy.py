"""Which S3 and Hub endpoints a FineTuneJob may name (SSRF guard)."""

from __future__ import annotations

import dataclasses

import pytest

from kubeft_operator import config
from kubeft_operator.api import endpoint_policy
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
        ("http://169.254.169.254", None, STRICT, "link-local address (169.254.169.254, cloud metadata)"),
        ("http://169.254.169.254", None, LENIENT, "link-local address (169.254.169.254, cloud metadata)"),
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


# (endpoint, refused when private endpoints are not allowed, refused when they are)
SPELLINGS = [
    # ordinary public names and addresses: allowed either way
    ("https://s3.amazonaws.com", None, None),
    ("https://storage.googleapis.com:443", None, None),
    ("https://huggingface.co", None, None),
    ("HTTPS://S3.EU-WEST-1.AMAZONAWS.COM.", None, None),
    ("http://8.8.8.8:9000", None, None),
    ("http://134744072", None, None),  # 8.8.8.8 as one number: public, so allowed
    ("http://[2001:4860:4860::8888]", None, None),
    # the metadata address in every spelling the resolver accepts: always refused
    ("http://169.254.169.254", "link-local", "link-local"),
    ("http://2852039166", "link-local", "link-local"),
    ("http://0xa9fea9fe", "link-local", "link-local"),
    ("http://0xA9.0xFE.0xA9.0xFE", "link-local", "link-local"),
    ("http://0251.0376.0251.0376", "link-local", "link-local"),
    ("http://0251.254.169.254", "link-local", "link-local"),
    ("http://169.254.43518", "link-local", "link-local"),
    ("http://169.16689662", "link-local", "link-local"),
    ("http://169.254.169.254.", "link-local", "link-local"),
    ("http://169.254.169.254..", "link-local", "link-local"),
    ("http://%31%36%39.254.169.254", "link-local", "link-local"),
    ("http://[::ffff:169.254.169.254]", "link-local", "link-local"),
    ("http://[::ffff:a9fe:a9fe]", "link-local", "link-local"),
    ("http://[::169.254.169.254]", "link-local", "link-local"),
    ("http://[64:ff9b::a9fe:a9fe]", "link-local", "link-local"),
    ("http://[2002:a9fe:a9fe::1]", "link-local", "link-local"),
    ("http://[fe80::1]", "link-local", "link-local"),
    ("http://[fe80::1%25eth0]", "link-local", "link-local"),
    ("http://[fd00:ec2::254]", "metadata", "metadata"),
    ("http://100.100.100.200", "metadata", "metadata"),
    ("http://metadata.google.internal", "metadata", "metadata"),
    ("http://metadata.google.internal.", "metadata", "metadata"),
    # userinfo and hosts clients read differently: always refused
    ("http://s3.amazonaws.com@169.254.169.254", "malformed", "malformed"),
    ("http://user:pw@s3.amazonaws.com", "malformed", "malformed"),
    ("http://169.254.169.254\\@s3.amazonaws.com", "malformed", "malformed"),
    ("http://s3 amazonaws.com", "malformed", "malformed"),
    # loopback and private in any spelling: refused unless allowed
    ("http://127.0.0.1:9000", "loopback", None),
    ("http://2130706433", "loopback", None),
    ("http://0x7f000001", "loopback", None),
    ("http://0177.0.0.1", "loopback", None),
    ("http://127.1", "loopback", None),
    ("http://[::1]", "loopback", None),
    ("http://[::ffff:127.0.0.1]", "loopback", None),
    ("http://localhost.", "loopback", None),
    ("http://minio.localhost:9000", "loopback", None),
    ("http://10.0.3.7:9000", "private", None),
    ("http://167772935", "private", None),  # 10.0.3.7 as one number
    ("http://[::ffff:10.0.3.7]", "private", None),
    ("http://0.0.0.0", "unspecified", None),
]


@pytest.mark.parametrize(("url", "strict", "lenient"), SPELLINGS, ids=[s[0] for s in SPELLINGS])
def test_every_spelling_is_judged_by_the_address_it_reaches(url: str, strict: str | None, lenient: str | None) -> None:
    for allow_private, want in ((False, strict), (True, lenient)):
        try:
            endpoint_policy.check(url, allow_private=allow_private)
            got = None
        except endpoint_policy.Refused as refused:
            got = refused.kind
        assert got == want, f"{url} with allow_private={allow_private}: {got}, want {want}"


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("2852039166", "169.254.169.254"),
        ("0xa9fea9fe", "169.254.169.254"),
        ("0251.0376.0251.0376", "169.254.169.254"),
        ("169.254.43518", "169.254.169.254"),
        ("169.16689662", "169.254.169.254"),
        ("127.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("256.1.1.1", None),
        ("1.2.3.4.5", None),
        ("4294967296", None),
        ("08.1.1.1", None),  # 8 is not an octal digit
        ("example.com", None),
        ("", None),
    ],
)
def test_inet_aton_spellings(text: str, want: str | None) -> None:
    got = endpoint_policy.parse_inet_aton(text)
    assert (str(got) if got is not None else None) == want


def test_refusal_messages_name_the_field_and_what_to_do() -> None:
    strict = endpoints.problem(_spec("http://0x7f000001:9000"), STRICT)
    assert strict == (
        "spec.storage.endpoint http://0x7f000001:9000 is a loopback address (127.0.0.1), which this operator does "
        "not allow; use the store's public name, or ask the platform team to set operator.allowPrivateEndpoints=true"
    )
    userinfo = endpoints.problem(_spec(hub="http://a@b.example"), LENIENT)
    assert userinfo is not None and userinfo.startswith("spec.output.hub.endpoint http://a@b.example carries user")
