"""A run owns its checkpoints and artifacts, against a real S3 server: no run resumes or overwrites another's.

The store is the real SeaweedFS (tests/fixtures/s3.py); ``s3_iam`` gives its read-only identity too,
whose writes the store really refuses.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import peft
import pytest
import safetensors.torch
import torch
import transformers

from kubeft_trainer import errors, storage
from kubeft_trainer.export import manifest, verify
from kubeft_trainer.export import s3 as export_s3
from kubeft_trainer.model import warm_start
from kubeft_trainer.train import checkpoints
from tests.fixtures.s3 import S3, IamS3

ONE = checkpoints.Identity(uid="uid-one", spec_hash="h")
TWO = checkpoints.Identity(uid="uid-two", spec_hash="h")


def checkpoint_dir(root: pathlib.Path, step: int, identity: checkpoints.Identity) -> pathlib.Path:
    path = root / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "adapter_model.safetensors").write_bytes(b"w" * 10)
    checkpoints.mark_complete(path, step=step, identity=identity)
    return path


def test_remote_resumes_only_its_own_runs_checkpoints_and_cleans_them_up(s3: S3, tmp_path: pathlib.Path) -> None:
    prefix = s3.uri("adapters/.kubeft-runs/x/shared/checkpoints")
    mine = checkpoints.Remote(s3.client, prefix, ONE)
    theirs = checkpoints.Remote(s3.client, prefix, TWO)
    mine.upload(checkpoint_dir(tmp_path / "a", 10, ONE), step=10)
    # Another run's newer checkpoint under the same prefix (as a copy by hand would leave it).
    theirs.upload(checkpoint_dir(tmp_path / "b", 20, TWO), step=20)

    assert mine.steps() == [10, 20]
    assert mine.latest() == 10
    assert theirs.latest() == 20
    assert checkpoints.Remote(s3.client, prefix, checkpoints.Identity("uid-one", "other")).latest() is None

    s3.client.put_object(Bucket=s3.bucket, Key="adapters/.kubeft-runs/x/shared/checkpoints/checkpoint-30/x", Body=b"")
    assert mine.delete_all() == 5  # two markers, two weights, one half-uploaded leftover
    assert s3.keys("adapters/.kubeft-runs/") == []


class Recorder:
    """A boto3 client that records what it was asked to do, in order."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls: list[tuple[str, str]] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            key = kwargs.get("Key") or (args[2] if name == "upload_file" else "")
            self.calls.append((name, str(key).rsplit("/", 1)[-1]))
            return method(*args, **kwargs)

        return call


def staged(directory: pathlib.Path, files: dict[str, str]) -> pathlib.Path:
    directory.mkdir(parents=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    manifest.write(directory, step=1)
    return directory


def test_export_replaces_an_earlier_adapter_without_a_moment_of_mismatch(s3: S3, tmp_path: pathlib.Path) -> None:
    uri = s3.uri("adapters/x")
    first = staged(tmp_path / "1", {"adapter_model.safetensors": "old", "tokenizer.json": "{}"})
    export_s3.upload(s3.client, first, uri)
    second = staged(tmp_path / "2", {"adapter_model.safetensors": "new!"})

    recorder = Recorder(s3.client)
    export_s3.upload(recorder, second, uri)

    writes = [c for c in recorder.calls if c[0] in ("delete_object", "upload_file")]
    # The earlier manifest goes first, the new one comes last, and only then do stale files go.
    assert writes[0] == ("delete_object", "manifest.json")
    assert writes[1] == ("upload_file", "adapter_model.safetensors")
    assert writes[2] == ("upload_file", "manifest.json")
    assert writes[3:] == [("delete_object", "tokenizer.json")]
    assert s3.keys("adapters/x") == ["adapters/x/adapter_model.safetensors", "adapters/x/manifest.json"]
    assert s3.read("adapters/x/manifest.json") == (second / "manifest.json").read_bytes()


def test_write_preflight_refuses_read_only_keys_that_head_bucket_accepts(s3_iam: IamS3) -> None:
    reader = s3_iam.client(s3_iam.read_only)
    reader.head_bucket(Bucket=s3_iam.bucket)  # what the old check did: it passes

    with pytest.raises(errors.OutputFailed) as refused:
        export_s3.preflight(reader, s3_iam.uri("adapters/x"))
    assert refused.value.exit_code == errors.EXIT_USER_ERROR
    assert "AccessDenied" in refused.value.message and s3_iam.bucket in refused.value.message

    admin = s3_iam.client(s3_iam.admin)
    export_s3.preflight(admin, s3_iam.uri("adapters/x"), s3_iam.uri("adapters/.kubeft-runs/x/u"))
    listed = admin.list_objects_v2(Bucket=s3_iam.bucket).get("Contents", [])
    assert listed == [], "the probe objects are deleted again"


def test_model_cache_fetches_an_object_replaced_with_the_same_size(s3: S3, tmp_path: pathlib.Path) -> None:
    s3.client.put_object(Bucket=s3.bucket, Key="models/m/config.json", Body=b'{"a": 1}')
    cache = tmp_path / "cache"
    storage.download_prefix(s3.client, storage.S3Uri(s3.bucket, "models/m"), cache)
    assert (cache / "config.json").read_bytes() == b'{"a": 1}'

    s3.client.put_object(Bucket=s3.bucket, Key="models/m/config.json", Body=b'{"a": 2}')
    storage.download_prefix(s3.client, storage.S3Uri(s3.bucket, "models/m"), cache)
    assert (cache / "config.json").read_bytes() == b'{"a": 2}'

    # Unchanged objects are not fetched again.
    before = (cache / "config.json").stat().st_mtime_ns
    storage.download_prefix(s3.client, storage.S3Uri(s3.bucket, "models/m"), cache)
    assert (cache / "config.json").stat().st_mtime_ns == before


def lora_model(path: pathlib.Path, *, r: int) -> Any:
    transformers.set_seed(r)
    base = transformers.AutoModelForCausalLM.from_pretrained(str(path))
    config = peft.LoraConfig(task_type="CAUSAL_LM", r=r, target_modules=["q_proj", "v_proj"], lora_dropout=0.0)
    return peft.get_peft_model(base, config)


@pytest.fixture
def trained_adapter(tiny: dict[str, pathlib.Path], tmp_path: pathlib.Path) -> pathlib.Path:
    model = lora_model(tiny["causal-lm"], r=8)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.fill_(0.5)  # freshly initialised LoRA B is zero: make the weights tell
    out = tmp_path / "adapter"
    model.save_pretrained(str(out))
    return out


def test_warm_start_loads_the_weights_of_a_matching_adapter(tiny: dict[str, pathlib.Path], trained_adapter) -> None:
    model = lora_model(tiny["causal-lm"], r=8)
    loaded = warm_start.load(model, trained_adapter, uri="s3://b/adapters/first")
    assert loaded > 0
    saved = safetensors.torch.load_file(str(trained_adapter / "adapter_model.safetensors"))
    state = peft.get_peft_model_state_dict(model)
    assert state.keys() == saved.keys()
    for name, tensor in saved.items():
        assert torch.equal(state[name], tensor), name


def test_warm_start_refuses_another_rank_with_the_difference_named(
    tiny: dict[str, pathlib.Path], trained_adapter: pathlib.Path
) -> None:
    model = lora_model(tiny["causal-lm"], r=16)
    with pytest.raises(errors.InvalidConfig) as refused:
        warm_start.load(model, trained_adapter, uri="s3://b/adapters/first")
    assert "r is 16 for this run but 8 in the adapter resumed from" in refused.value.message
    assert refused.value.exit_code == errors.EXIT_USER_ERROR


def test_warm_start_refuses_weights_that_do_not_fit_even_when_the_config_says_they_do(
    tiny: dict[str, pathlib.Path], trained_adapter: pathlib.Path
) -> None:
    config = json.loads((trained_adapter / "adapter_config.json").read_text())
    config["r"] = 16
    (trained_adapter / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(errors.InvalidConfig, match="cannot be loaded"):
        warm_start.load(lora_model(tiny["causal-lm"], r=16), trained_adapter, uri="/adapters/edited")


def exported(s3: S3, tmp_path: pathlib.Path, prefix: str = "adapters/v") -> tuple[str, str]:
    directory = staged(tmp_path / "export", {"adapter_model.safetensors": "weights", "README.md": "# card"})
    export_s3.upload(s3.client, directory, s3.uri(prefix))
    return s3.uri(prefix), manifest.sha256_file(directory / "manifest.json")


def test_verifier_measures_the_artifact_itself(s3: S3, tmp_path: pathlib.Path) -> None:
    uri, digest = exported(s3, tmp_path)
    artifact = verify.verify_s3(s3.client, uri, claimed_sha256=digest)
    assert (artifact.uri, artifact.sha256) == (uri, digest)
    assert artifact.size_bytes == len("weights") + len("# card")


@pytest.mark.parametrize(
    ("tamper", "names"),
    [
        (lambda s3: s3.client.put_object(Bucket=s3.bucket, Key="adapters/v/README.md", Body=b"# edit"), "README.md"),
        (lambda s3: s3.client.delete_object(Bucket=s3.bucket, Key="adapters/v/README.md"), "missing"),
        (lambda s3: s3.client.put_object(Bucket=s3.bucket, Key="adapters/v/extra.bin", Body=b"x"), "extra.bin"),
        (lambda s3: s3.client.delete_object(Bucket=s3.bucket, Key="adapters/v/manifest.json"), "no manifest.json"),
    ],
)
def test_verifier_refuses_a_tampered_or_incomplete_export(s3: S3, tmp_path: pathlib.Path, tamper, names) -> None:
    uri, digest = exported(s3, tmp_path)
    tamper(s3)
    with pytest.raises(verify.Unverified) as refused:
        verify.verify_s3(s3.client, uri, claimed_sha256=digest)
    assert names in refused.value.message and refused.value.reason == "ArtifactUnverified"


def test_verifier_refuses_a_claim_that_names_another_manifest(s3: S3, tmp_path: pathlib.Path) -> None:
    uri, _ = exported(s3, tmp_path)
    with pytest.raises(verify.Unverified, match="not the 0000"):
        verify.verify_s3(s3.client, uri, claimed_sha256="0" * 64)
