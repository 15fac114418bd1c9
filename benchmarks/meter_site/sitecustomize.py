"""Loaded by every Python process started with ``benchmarks.meter.launched_env()`` on its ``PYTHONPATH``.

It does nothing unless the process is kubeft's trainer (``-m kubeft_trainer``) and the benchmark
asked for a meter; then it installs :mod:`benchmarks.meter` there. The repository root goes at the
end of ``sys.path``, after everything the trainer would import anyway.
"""

import os
import sys

if os.environ.get("KUBEFT_BENCH_METER_DIR"):
    sys.path.append(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    from benchmarks import meter

    meter.activate_from_env()
