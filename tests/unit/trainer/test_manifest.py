"""manifest.json lists every exported file with its sha256 and size, and detects tampering."""

from __future__ import annotations

import hashlib
import json
import pathlib

from kubeft_trainer.export import manifest


def export_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    (tmp_path / "adapter_config.json").write_text('{"r": 8}')
    (tmp_path / "adapter_model.safetensors").write_bytes(b"\x00" * 1000)
    (tmp_path / "README.md").write_text("# card")
    return tmp_path


def test_manifest_lists_every_file_but_itself(tmp_path: pathlib.Path) -> None:
    path, doc = manifest.write(export_dir(tmp_path), method="lora")
    on_disk = json.loads(path.read_text())
    assert on_disk == doc
    assert [f["path"] for f in doc["files"]] == ["README.md", "adapter_config.json", "adapter_model.safetensors"]
    assert doc["method"] == "lora"


def test_manifest_records_sha256_and_size(tmp_path: pathlib.Path) -> None:
    _, doc = manifest.write(export_dir(tmp_path))
    weights = next(f for f in doc["files"] if f["path"] == "adapter_model.safetensors")
    assert weights["size"] == 1000
    assert weights["sha256"] == hashlib.sha256(b"\x00" * 1000).hexdigest()
    assert doc["totalSize"] == sum(f["size"] for f in doc["files"])


def test_verify_passes_on_an_untouched_directory(tmp_path: pathlib.Path) -> None:
    manifest.write(export_dir(tmp_path))
    assert manifest.verify(tmp_path) == []


def test_verify_reports_changed_and_missing_files(tmp_path: pathlib.Path) -> None:
    manifest.write(export_dir(tmp_path))
    (tmp_path / "adapter_model.safetensors").write_bytes(b"\x01" * 1000)
    (tmp_path / "README.md").unlink()
    problems = manifest.verify(tmp_path)
    assert "adapter_model.safetensors: sha256 mismatch" in problems
    assert "README.md: missing" in problems


def test_verify_command_checks_the_status_hash_then_every_file(tmp_path: pathlib.Path, capsys) -> None:
    path, _ = manifest.write(export_dir(tmp_path))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert manifest.main([str(tmp_path), "--sha256", digest]) == 0
    assert "verified 3 files" in capsys.readouterr().out
    assert manifest.main([str(tmp_path), "--sha256", "0" * 64]) == 1
    assert "status.artifact.sha256" in capsys.readouterr().err
    (tmp_path / "README.md").write_text("# edited")
    assert manifest.main([str(tmp_path)]) == 1
    assert "README.md: size" in capsys.readouterr().err


def test_verify_command_says_when_the_manifest_is_missing(tmp_path: pathlib.Path, capsys) -> None:
    assert manifest.main([str(export_dir(tmp_path))]) == 1
    assert "incomplete" in capsys.readouterr().err
