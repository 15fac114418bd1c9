#!/usr/bin/env bash
# `make gpu-check`: the one-shot check of kubeft's trainer on this machine's GPUs (benchmarks/gpu_check.py).
# For a machine with a GPU and no internet: models are built from configs with random weights, nothing
# is downloaded (HF_HUB_OFFLINE=1), and it needs only this repository and a Python environment with the
# trainer's requirements (the venv of `make setup`, or any python3 that has them). Sized for 8 minutes on
# one H100/H200 (every run it starts is bounded by that budget); writes benchmarks/results/gpu-check.{json,md};
# exits non-zero when a step failed, and at once when the trainer would not use the GPU.
#
#   hack/gpu-check.sh                 the GPU check
#   hack/gpu-check.sh --cpu-smoke     the same steps with tiny shapes on the CPU, about 2 minutes
#                                     (or KUBEFT_GPU_CHECK_CPU_SMOKE=1); results under /tmp/kubeft-gpu-check-smoke
#   hack/gpu-check.sh --help          the other options (--store, --workdir, --out, --budget)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
VENV="${VENV:-${KUBEFT_CACHE:-$HOME/.cache/kubeft}/venv-py3.11}"
if [ -x "$VENV/bin/python" ]; then PY="$VENV/bin/python"; else PY="${PYTHON:-python3}"; fi
# This checkout's trainer and operator, even where the environment has another copy installed.
export PYTHONPATH="$root/operator:$root/trainer-image:$root${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1
missing=$("$PY" - <<'PYTHON'
import importlib.util
need = ("torch", "transformers", "peft", "accelerate", "datasets", "yaml", "pydantic", "psutil", "boto3")
print(" ".join(name for name in need if importlib.util.find_spec(name) is None))
PYTHON
)
if [ -n "$missing" ]; then
  echo "gpu-check: $PY lacks $missing; run 'make setup', or point VENV (or PYTHON) at an environment with the" \
    "trainer's requirements (trainer-image/requirements.txt)" >&2
  exit 2
fi
echo "gpu-check: $PY ($("$PY" -c 'import sys; print(sys.version.split()[0])')), repository $root" >&2
exec "$PY" -m benchmarks.gpu_check "$@"
