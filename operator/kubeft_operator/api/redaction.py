"""Redaction: secrets never reach a condition, an Event, status or the operator's log.

Part of the contract package, so both sides apply it. A trainer's failure text can carry a
secret: an exception that prints a URL with a token, a client that echoes its credentials, a log
tail taken as the termination message (``FallbackToLogsOnError``). The trainer masks the values
of its secret environment variables (it knows them) before it writes its termination message;
the operator, which cannot read Secrets, masks what looks like a credential in any text it copies
from a pod into status or Events. Standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "[REDACTED]"
# The trainer's environment variables that come from Secrets (builders/job.py sets them).
SECRET_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "KUBEFT_HUB_TOKEN",
)

# Each pattern's group 1, when it has one, is kept (the key before a value); the rest is masked.
_PATTERNS = [
    # AWS access key ids, Hugging Face tokens, JSON Web Tokens (service-account tokens among them)
    re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b"),
    re.compile(r"\bhf_[A-Za-z0-9]{20,}\b"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    # Authorization headers
    re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    # key=value, key: value, "key": "value" for keys that name a credential
    re.compile(
        r"""(?ix)
        (\b[a-z0-9_-]*(?:secret|token|password|passwd|credential|api[_-]?key|access[_-]?key|signature)[a-z0-9_-]*
        ["']?\s*[:=]\s*["']?)
        [^\s"',;&]{4,}"""
    ),
]


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with each value in ``secrets`` (at least 4 characters) and anything shaped like a
    credential replaced by ``[REDACTED]``."""
    for value in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(value, MASK)
    for pattern in _PATTERNS:
        text = pattern.sub((r"\1" if pattern.groups else "") + MASK, text)
    return text
