"""The operators that the scale benchmark compares: this checkout's, and a baseline commit's.

The baseline is the operator of an earlier commit, run as its image would run it: that commit's
``operator/`` and ``crds/`` (exported with ``git archive``, so nothing is registered in the
repository's ``.git`` and nothing is left to prune if the benchmark is killed) and a virtualenv
with exactly the pins of that commit's ``operator/requirements.txt``, installed from PyPI with pip
(the operator Dockerfile does the same from a wheelhouse). Both live in
``$KUBEFT_CACHE/bench-baseline-<commit>-py<X.Y>/``, written once and reused, so only the first
run pays for the install. Called by :mod:`benchmarks.operator_scale`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable

ROOT = pathlib.Path(__file__).resolve().parents[1]
# The last operator on lightkube (issue 16): the one the move to the official client is measured against.
DEFAULT_REF = "52ff078"
# What the baseline needs from its commit: the operator package, its pins, and its CRD.
PATHS = ("operator", "crds")
STAMP = "ready.json"


@dataclasses.dataclass(frozen=True)
class OperatorTree:
    """One operator to start: the interpreter and the source tree (``operator/``, ``crds/``) it runs from."""

    label: str
    python: pathlib.Path
    root: pathlib.Path
    commit: str | None
    ref: str | None = None
    requirements: tuple[str, ...] = ()

    @property
    def pythonpath(self) -> pathlib.Path:
        return self.root / "operator"

    @property
    def crd(self) -> pathlib.Path:
        return self.root / "crds" / "finetunejob.yaml"

    def describe(self) -> dict[str, object]:
        return {"ref": self.ref, "commit": self.commit, "requirements": list(self.requirements)}


def cache_root() -> pathlib.Path:
    return pathlib.Path(os.environ.get("KUBEFT_CACHE", pathlib.Path.home() / ".cache" / "kubeft"))


def cache_dir(cache: pathlib.Path, commit: str, python_version: tuple[int, int]) -> pathlib.Path:
    """Where a baseline's tree and virtualenv live: keyed by the commit (not the ref, which may move)
    and by the Python version (a virtualenv belongs to one interpreter)."""
    return cache / f"bench-baseline-{commit[:12]}-py{python_version[0]}.{python_version[1]}"


def pins(requirements: str) -> tuple[str, ...]:
    """The requirement lines of a requirements.txt, comments and blank lines left out."""
    lines = (line.split("#", 1)[0].strip() for line in requirements.splitlines())
    return tuple(line for line in lines if line)


def stamp(commit: str, python: str, requirements: str) -> dict[str, str]:
    """What a finished cache directory records; a directory whose stamp differs is rebuilt."""
    return {"commit": commit, "python": python, "requirements": hashlib.sha256(requirements.encode()).hexdigest()}


def _git(repo: pathlib.Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True)


def resolve(ref: str, *, repo: pathlib.Path = ROOT) -> str:
    """The full commit `ref` names in `repo`; a RuntimeError that says what to do when it is not there."""
    proc = _git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if proc.returncode != 0:
        shallow = _git(repo, "rev-parse", "--is-shallow-repository").stdout.strip() == b"true"
        hint = "this clone is shallow: `git fetch --unshallow` brings the history" if shallow else "fetch it"
        raise RuntimeError(
            f"the baseline ref `{ref}` is not a commit in {repo} ({hint}); pass another with "
            "`--baseline-ref`, or measure this checkout alone with `--no-baseline`"
        )
    return proc.stdout.decode().strip()


def current(*, repo: pathlib.Path = ROOT) -> OperatorTree:
    """This checkout's operator, on the interpreter running the benchmark."""
    head = _git(repo, "rev-parse", "HEAD").stdout.decode().strip() or None
    return OperatorTree(label="this checkout", python=pathlib.Path(sys.executable), root=repo, commit=head)


def prepare(
    ref: str,
    *,
    repo: pathlib.Path = ROOT,
    cache: pathlib.Path | None = None,
    log: Callable[[str], None] = print,
) -> OperatorTree:
    """The baseline operator of `ref`: its tree and virtualenv, built on the first call and reused after."""
    commit = resolve(ref, repo=repo)
    requirements = _git(repo, "show", f"{commit}:operator/requirements.txt")
    if requirements.returncode != 0:
        raise RuntimeError(f"commit {commit[:12]} has no operator/requirements.txt: it cannot be the baseline")
    text = requirements.stdout.decode()
    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    directory = cache_dir(cache or cache_root(), commit, sys.version_info[:2])
    want = stamp(commit, python, text)
    tree = OperatorTree(
        label=f"baseline {ref}",
        python=directory / "venv" / "bin" / "python",
        root=directory / "src",
        commit=commit,
        ref=ref,
        requirements=pins(text),
    )
    marker = directory / STAMP
    if marker.exists() and json.loads(marker.read_text()) == want and tree.python.exists():
        return tree
    log(f"baseline operator {ref} ({commit[:12]}): exporting its tree and installing {', '.join(tree.requirements)}")
    # Half-built by a run that was killed, or built for other pins: start again.
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    archive = _git(repo, "archive", "--format=tar", commit, *PATHS)
    if archive.returncode != 0:
        raise RuntimeError(f"git archive {commit[:12]} failed: {archive.stderr.decode()[-500:]}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(tree.root, filter="data")
    _run([sys.executable, "-m", "venv", str(directory / "venv")], what="creating the baseline's virtualenv")
    _run(
        [
            str(tree.python),
            "-m",
            "pip",
            "install",
            "--no-input",
            "--quiet",
            "-r",
            str(tree.pythonpath / "requirements.txt"),
        ],
        what=f"installing {ref}'s operator/requirements.txt from PyPI (is the index reachable?)",
    )
    # Every import the operator makes at startup, so that a missing dependency fails here, not mid-benchmark.
    _run(
        [str(tree.python), "-c", "import kubeft_operator.handlers"],
        what=f"importing {ref}'s operator in its virtualenv",
        env={**os.environ, "PYTHONPATH": str(tree.pythonpath)},
    )
    marker.write_text(json.dumps(want) + "\n")
    return tree


def _run(command: list[str], *, what: str, env: dict[str, str] | None = None) -> None:
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{(proc.stdout + proc.stderr)[-2000:]}")
