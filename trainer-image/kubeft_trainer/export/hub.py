"""Push the staged adapter directory to a Hugging Face Hub model repository.

Creates the repository when missing (`exist_ok`, private per the spec) and uploads the folder in
one commit, with the write token from KUBEFT_HUB_TOKEN and `spec.output.hub.endpoint` for
self-hosted mirrors. :func:`preflight` checks write access before any download. Called by
:mod:`kubeft_trainer.export` and :mod:`kubeft_trainer.pipeline`.
"""

from __future__ import annotations

import logging
import os
import pathlib
from typing import Any

import huggingface_hub

from kubeft_operator.api import spec as api_spec
from kubeft_trainer import errors

log = logging.getLogger(__name__)


def _api(hub: api_spec.HubOutput, env: Any) -> huggingface_hub.HfApi:
    token = env.get("KUBEFT_HUB_TOKEN")
    if not token:
        raise errors.OutputFailed(
            "KUBEFT_HUB_TOKEN is not set; spec.output.hub.tokenSecretRef must name a Secret with a write token",
            permanent=True,
        )
    return huggingface_hub.HfApi(endpoint=hub.endpoint, token=token)


def preflight(hub: api_spec.HubOutput, *, environ: dict[str, str] | None = None) -> None:
    """Before any download: the token is valid, may write, and the repository exists (created if missing)."""
    api = _api(hub, os.environ if environ is None else environ)
    try:
        role = ((api.whoami().get("auth") or {}).get("accessToken") or {}).get("role")
        if role == "read":
            raise errors.OutputFailed(
                f"the Hub token in spec.output.hub.tokenSecretRef is read-only; pushing to {hub.repo} needs a "
                "token with write access",
                permanent=True,
            )
        api.create_repo(hub.repo, private=hub.private, exist_ok=True, repo_type="model")
    except huggingface_hub.errors.HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        raise errors.OutputFailed(
            f"cannot write to the Hub repository {hub.repo}: {exc}; check the token's write access to it",
            permanent=status in (401, 403, 404),
        ) from exc
    log.info("write access to hf://%s checked", hub.repo)


def push(
    directory: pathlib.Path, hub: api_spec.HubOutput, *, commit_message: str, environ: dict[str, str] | None = None
) -> str:
    api = _api(hub, os.environ if environ is None else environ)
    try:
        api.create_repo(hub.repo, private=hub.private, exist_ok=True, repo_type="model")
        api.upload_folder(
            folder_path=str(directory), repo_id=hub.repo, repo_type="model", commit_message=commit_message
        )
    except huggingface_hub.errors.HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        raise errors.OutputFailed(
            f"pushing to the Hub repository {hub.repo} failed: {exc}", permanent=status in (401, 403, 404)
        ) from exc
    log.info("adapter pushed to hf://%s", hub.repo)
    return f"hf://{hub.repo}"
