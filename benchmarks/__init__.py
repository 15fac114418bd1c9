"""kubeft benchmarks: trainer throughput, operator scale and artifact size, each against a baseline.

``make bench`` (``python -m benchmarks.run``) runs all three and writes benchmarks/results/
(results.json, results.md, scale.png); ``make bench-quick`` adds ``--quick``. Each section is also
a module with its own ``python -m benchmarks.<section> --help``. docs/performance.md explains the
method and the figures.
"""
