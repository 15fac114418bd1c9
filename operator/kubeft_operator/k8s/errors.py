"""API failures the reconciler reacts to, free of any client library's types.

:mod:`kubeft_operator.k8s.client` turns the API server's Status answers into these; unit tests raise
them from a fake API without importing the client.
"""

from __future__ import annotations


class ApiFailure(Exception):
    """The API server refused or failed a request; the message is safe to show in a status."""

    def __init__(self, message: str, *, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


class AlreadyExists(ApiFailure):
    """Create found an object of that name (409 AlreadyExists)."""


class NotFound(ApiFailure):
    """The object is gone (404)."""


class Invalid(ApiFailure):
    """The API server refused the object itself (422 Invalid): sending it again cannot succeed."""
