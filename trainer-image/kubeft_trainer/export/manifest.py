"""manifest.json: the sha256 and size of every exported file, written last so its presence means done.

Pure; used by :mod:`kubeft_trainer.export` and by anyone verifying a downloaded adapter.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
from typing import Any

NAME = "manifest.json"
CHUNK = 1024 * 1024


def sha256_file(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def build(directory: pathlib.Path, **info: Any) -> dict[str, Any]:
    """The manifest of every file under `directory` except the manifest itself; `info` is added as is."""
    files = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        rel = path.relative_to(directory).as_posix()
        if rel != NAME:
            files.append({"path": rel, "sha256": sha256_file(path), "size": path.stat().st_size})
    return {"version": 1, **info, "files": files, "totalSize": sum(f["size"] for f in files)}


def write(directory: pathlib.Path, **info: Any) -> tuple[pathlib.Path, dict[str, Any]]:
    doc = build(directory, **info)
    path = directory / NAME
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return path, doc


def verify(directory: pathlib.Path) -> list[str]:
    """Problems found comparing the files under `directory` with its manifest (empty: all good)."""
    doc = json.loads((directory / NAME).read_text())
    problems = []
    for entry in doc["files"]:
        path = directory / entry["path"]
        if not path.is_file():
            problems.append(f"{entry['path']}: missing")
        elif path.stat().st_size != entry["size"]:
            problems.append(f"{entry['path']}: size {path.stat().st_size} != {entry['size']}")
        elif sha256_file(path) != entry["sha256"]:
            problems.append(f"{entry['path']}: sha256 mismatch")
    return problems
