"""Hub export: create the repo (exist_ok, private per spec) on the configured endpoint, upload the folder."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest

from kubeft_operator.api import spec as api_spec
from kubeft_trainer import errors
from kubeft_trainer.export import hub

HUB = api_spec.HubOutput.model_validate(
    {"repo": "team/adapter", "private": False, "tokenSecretRef": {"name": "hub"}, "endpoint": "https://hub.internal"}
)


class FakeApi:
    instances: list[FakeApi] = []

    def __init__(self, *, endpoint: str | None, token: str) -> None:
        self.endpoint, self.token = endpoint, token
        self.calls: list[tuple[str, dict[str, Any]]] = []
        FakeApi.instances.append(self)

    def create_repo(self, repo_id: str, **kwargs: Any) -> None:
        self.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))

    def upload_folder(self, **kwargs: Any) -> None:
        self.calls.append(("upload_folder", kwargs))


@pytest.fixture
def fake_api(monkeypatch: pytest.MonkeyPatch) -> type[FakeApi]:
    FakeApi.instances = []
    monkeypatch.setattr(hub.huggingface_hub, "HfApi", FakeApi)
    return FakeApi


def test_repo_is_created_then_the_folder_uploaded(fake_api: type[FakeApi], tmp_path: pathlib.Path) -> None:
    uri = hub.push(tmp_path, HUB, commit_message="kubeft: job", environ={"KUBEFT_HUB_TOKEN": "hf_write"})
    (api,) = fake_api.instances
    assert uri == "hf://team/adapter"
    assert (api.endpoint, api.token) == ("https://hub.internal", "hf_write")
    assert api.calls == [
        ("create_repo", {"repo_id": "team/adapter", "private": False, "exist_ok": True, "repo_type": "model"}),
        (
            "upload_folder",
            {
                "folder_path": str(tmp_path),
                "repo_id": "team/adapter",
                "repo_type": "model",
                "commit_message": "kubeft: job",
            },
        ),
    ]


def test_missing_write_token_is_a_permanent_output_failure(fake_api: type[FakeApi], tmp_path: pathlib.Path) -> None:
    with pytest.raises(errors.OutputFailed, match="KUBEFT_HUB_TOKEN") as caught:
        hub.push(tmp_path, HUB, commit_message="m", environ={})
    assert caught.value.exit_code == 64
    assert fake_api.instances == []
