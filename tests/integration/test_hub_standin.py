"""The Hub stand-in (tests/fixtures/hub.py) driven by the real ``huggingface_hub`` client.

A local stand-in for the Hub; the real Hub is not reachable here. These tests pin down that the client's own
code path (create_repo, upload_folder, create_commit, list_repo_files, hf_hub_download) works unmodified
against it, so the trainer's export tests can trust it.
"""

import os
import pathlib
import subprocess
import sys

import huggingface_hub
import huggingface_hub.errors
import pytest

from tests.fixtures import hub as hub_standin

ADAPTER_FILES = {
    "adapter_config.json": b'{"peft_type": "LORA", "r": 8, "target_modules": ["q_proj", "v_proj"]}',
    "adapter_model.safetensors": bytes(range(256)) * 64,
    "README.md": b"---\nlibrary_name: peft\n---\n# tiny adapter\n",
}


def write_adapter(folder: pathlib.Path) -> pathlib.Path:
    folder.mkdir()
    for name, data in ADAPTER_FILES.items():
        (folder / name).write_bytes(data)
    return folder


def api_for(hub: hub_standin.HubStandIn, token: str | None = None) -> huggingface_hub.HfApi:
    return huggingface_hub.HfApi(endpoint=hub.url, token=token or hub.token)


def test_create_repo_records_private_flag(hub: hub_standin.HubStandIn) -> None:
    repo_url = api_for(hub).create_repo("adapter", private=True)

    assert repo_url.repo_id == f"{hub.user}/adapter"
    assert hub.repo(repo_url.repo_id).private is True
    assert api_for(hub).model_info(repo_url.repo_id).private is True


def test_public_repo_is_recorded_public(hub: hub_standin.HubStandIn) -> None:
    repo_url = api_for(hub).create_repo("team/adapter", private=False)

    assert hub.repo("team/adapter").private is False
    assert repo_url.repo_id == "team/adapter"


def test_upload_folder_round_trips_bytes_through_the_real_client(
    hub: hub_standin.HubStandIn, tmp_path: pathlib.Path
) -> None:
    api = api_for(hub)
    repo_id = api.create_repo("adapter", private=True).repo_id

    commit = api.upload_folder(repo_id=repo_id, folder_path=write_adapter(tmp_path / "adapter"))

    assert sorted(api.list_repo_files(repo_id)) == sorted([*ADAPTER_FILES, ".gitattributes"])
    assert api.model_info(repo_id).sha == commit.oid
    for name, data in ADAPTER_FILES.items():
        downloaded = huggingface_hub.hf_hub_download(
            repo_id, name, endpoint=hub.url, token=hub.token, cache_dir=tmp_path / "cache"
        )
        assert pathlib.Path(downloaded).read_bytes() == data
        assert (hub.files(repo_id) / name).read_bytes() == data


def test_upload_folder_sends_content_inline_without_lfs_or_xet(
    hub: hub_standin.HubStandIn, tmp_path: pathlib.Path
) -> None:
    api = api_for(hub)
    repo_id = api.create_repo("adapter").repo_id
    hub.requests.clear()

    api.upload_folder(repo_id=repo_id, folder_path=write_adapter(tmp_path / "adapter"))

    assert [(r.method, r.path) for r in hub.requests] == [
        ("POST", "/api/validate-yaml"),
        ("POST", f"/api/models/{repo_id}/preupload/main"),
        ("POST", f"/api/models/{repo_id}/commit/main"),
    ]
    assert all(r.token == hub.token for r in hub.requests)


def test_reuploading_unchanged_folder_makes_no_commit(hub: hub_standin.HubStandIn, tmp_path: pathlib.Path) -> None:
    api = api_for(hub)
    repo_id = api.create_repo("adapter").repo_id
    folder = write_adapter(tmp_path / "adapter")
    first = api.upload_folder(repo_id=repo_id, folder_path=folder)

    second = api.upload_folder(repo_id=repo_id, folder_path=folder)

    assert second.oid == first.oid
    assert [c.summary for c in hub.repo(repo_id).commits] == ["initial commit", "Upload folder using huggingface_hub"]


def test_create_commit_adds_and_deletes_files(hub: hub_standin.HubStandIn) -> None:
    api = api_for(hub)
    repo_id = api.create_repo("adapter").repo_id

    api.create_commit(
        repo_id,
        operations=[
            huggingface_hub.CommitOperationAdd("nested/weights.bin", b"\x00\x01\x02"),
            huggingface_hub.CommitOperationDelete(".gitattributes"),
        ],
        commit_message="replace",
    )

    assert [p.relative_to(hub.files(repo_id)).as_posix() for p in hub.files(repo_id).rglob("*") if p.is_file()] == [
        "nested/weights.bin"
    ]
    assert hub.repo(repo_id).commits[-1].summary == "replace"


def test_second_create_with_exist_ok_keeps_repo_and_files(hub: hub_standin.HubStandIn) -> None:
    api = api_for(hub)
    repo_id = api.create_repo("adapter", private=True).repo_id
    api.upload_file(path_or_fileobj=b"{}", path_in_repo="adapter_config.json", repo_id=repo_id)

    again = api.create_repo("adapter", private=False, exist_ok=True)

    assert again.repo_id == repo_id
    assert hub.repo(repo_id).private is True
    assert (hub.files(repo_id) / "adapter_config.json").read_bytes() == b"{}"


def test_second_create_without_exist_ok_fails_with_409(hub: hub_standin.HubStandIn) -> None:
    api = api_for(hub)
    api.create_repo("adapter")

    with pytest.raises(huggingface_hub.errors.HfHubHTTPError) as raised:
        api.create_repo("adapter")

    assert raised.value.response.status_code == 409


def test_subprocess_reaches_stand_in_through_hf_endpoint(hub: hub_standin.HubStandIn, tmp_path: pathlib.Path) -> None:
    script = (
        "import sys, huggingface_hub\n"
        "huggingface_hub.HfApi().upload_folder(repo_id=sys.argv[1], folder_path=sys.argv[2])\n"
    )
    repo_id = api_for(hub).create_repo("adapter").repo_id
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_TOKEN": hub.token, "HF_HOME": str(tmp_path / "hf-home")}

    subprocess.run(
        [sys.executable, "-c", script, repo_id, str(write_adapter(tmp_path / "adapter"))],
        env=env,
        check=True,
        timeout=60,
    )

    assert (hub.files(repo_id) / "adapter_config.json").read_bytes() == ADAPTER_FILES["adapter_config.json"]


@pytest.mark.parametrize("call", ["create_repo", "upload_folder"])
def test_wrong_token_fails_with_401(hub: hub_standin.HubStandIn, tmp_path: pathlib.Path, call: str) -> None:
    repo_id = api_for(hub).create_repo("adapter").repo_id
    api = api_for(hub, token="hf_wrong")

    with pytest.raises(huggingface_hub.errors.HfHubHTTPError) as raised:
        if call == "create_repo":
            api.create_repo("adapter", exist_ok=True)
        else:
            api.upload_folder(repo_id=repo_id, folder_path=write_adapter(tmp_path / "adapter"))

    assert raised.value.response.status_code == 401
    assert not isinstance(raised.value, huggingface_hub.errors.RepositoryNotFoundError)
    assert hub_standin.INVALID_CREDENTIALS in str(raised.value)
    assert sorted(p.name for p in hub.files(repo_id).iterdir()) == [".gitattributes"]


def test_private_repo_reads_as_missing_without_token(hub: hub_standin.HubStandIn, tmp_path: pathlib.Path) -> None:
    repo_id = api_for(hub).create_repo("adapter", private=True).repo_id

    with pytest.raises(huggingface_hub.errors.RepositoryNotFoundError):
        huggingface_hub.hf_hub_download(
            repo_id, ".gitattributes", endpoint=hub.url, token=False, cache_dir=tmp_path / "cache"
        )
