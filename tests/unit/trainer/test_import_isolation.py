"""The trainer image has no operator dependencies: every trainer module imports with kopf and the client blocked."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import importlib, importlib.abc, pkgutil, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("kopf", "kubernetes"):
            raise ImportError(f"{name} is blocked: the trainer must not import it")
        return None

sys.meta_path.insert(0, Block())
import kubeft_trainer
names = [m.name for m in pkgutil.walk_packages(kubeft_trainer.__path__, "kubeft_trainer.")]
for name in names:
    importlib.import_module(name)
print(len(names))
"""


def test_every_trainer_module_imports_without_kopf_or_the_kubernetes_client() -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stdout.split()[-1]) >= 20
