"""Where a benchmark section keeps its files: the directory the user named, or a temporary one.

Called by the ``main()`` of each section (:mod:`benchmarks.trainer_throughput`,
:mod:`benchmarks.operator_scale`, :mod:`benchmarks.artifact_size`) for its ``--workdir`` option.
"""

from __future__ import annotations

import contextlib
import pathlib
import tempfile
from collections.abc import Iterator


@contextlib.contextmanager
def workdir(
    path: pathlib.Path | None, *, prefix: str = "kubeft-bench-", parent: str | None = None
) -> Iterator[pathlib.Path]:
    """Yield ``path`` (created, kept afterwards), or a temporary directory removed on exit."""
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix=prefix, dir=parent) as tmp:
        yield pathlib.Path(tmp)
