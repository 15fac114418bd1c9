"""Push the staged adapter directory to a Hugging Face Hub model repository.

Creates the repository when missing (`exist_ok`, private per the spec) and uploads the folder in
one commit, with the write token from KUBEFT_HUB_TOKEN and `spec.output.hub.endpoint` for
self-hosted mirrors. Called by :mod:`kubeft_trainer.export`.
"""

from __future__ import annotations

import logging
import os
import pathlib

import huggingface_hub

from kubeft_operator.api import spec as api_spec
from kubeft_trainer import errors

log = logging.getLogger(__name__)


def push(
    directory: pathlib.Path, hub: api_spec.HubOutput, *, commit_message: str, environ: dict[str, str] | None = None
) -> str:
    env = os.environ if environ is None else environ
    token = env.get("KUBEFT_HUB_TOKEN")
    if not token:
        raise errors.OutputFailed(
            "KUBEFT_HUB_TOKEN is not set; spec.output.hub.tokenSecretRef must name a Secret with a write token",
            permanent=True,
        )
    api = huggingface_hub.HfApi(endpoint=hub.endpoint, token=token)
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
