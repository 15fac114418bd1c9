"""manifest.json: the sha256 and size of every exported file, written last so its presence means done.

Pure; used by :mod:`kubeft_trainer.export` and by anyone verifying a downloaded adapter:

    sha=$(kubectl get ftj NAME -o jsonpath='{.status.artifact.sha256}')
    python -m kubeft_trainer.export.manifest ./adapter --sha256 "$sha"

checks that manifest.json is the one the FineTuneJob's status names, then every file against it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pathlib
import sys
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kubeft_trainer.export.manifest", description="Verify a downloaded adapter."
    )
    parser.add_argument("directory", type=pathlib.Path, help="the downloaded output prefix")
    parser.add_argument("--sha256", help="status.artifact.sha256 of the FineTuneJob: the manifest's own hash")
    args = parser.parse_args(argv)
    path = args.directory / NAME
    if not path.is_file():
        print(f"{path}: missing; the export is incomplete or this is not an adapter directory", file=sys.stderr)
        return 1
    problems = []
    if args.sha256 and sha256_file(path) != args.sha256.strip().lower():
        problems.append(f"{NAME}: sha256 {sha256_file(path)} is not {args.sha256} (status.artifact.sha256)")
    problems += verify(args.directory)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    count = len(json.loads(path.read_text())["files"])
    print(f"verified {count} files against {path}" + (" and status.artifact.sha256" if args.sha256 else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
