"""``kubeft-operator`` / ``python -m kubeft_operator``: ``kopf run`` with kubeft's handlers.

Every ``kopf run`` option works (``--peering``, ``--standalone``, ``--namespace``,
``--liveness``, ``--verbose``); without ``--namespace`` the operator watches all namespaces.
``KUBEFT_MEMORY_PROFILE=FILE`` writes where its memory goes to FILE at each new RSS peak
(:func:`kubeft_operator.metrics.profile_memory`; ``KUBEFT_MEMORY_PROFILE_FRAMES`` adds tracemalloc).
"""

from __future__ import annotations

import os
import sys

from kopf import cli

from kubeft_operator import metrics

MODULE = "kubeft_operator.handlers"


def kopf_args(argv: list[str]) -> list[str]:
    """``kopf run`` arguments for ``kubeft-operator ARGV``: all namespaces unless told otherwise."""
    scoped = any(a in ("-A", "--all-namespaces", "-n") or a.startswith("--namespace") for a in argv)
    return ["run", f"--module={MODULE}", *([] if scoped else ["--all-namespaces"]), *argv]


def main(argv: list[str] | None = None) -> None:
    if os.environ.get("KUBEFT_MEMORY_PROFILE"):
        frames = int(os.environ.get("KUBEFT_MEMORY_PROFILE_FRAMES") or 0)
        metrics.profile_memory(os.environ["KUBEFT_MEMORY_PROFILE"], frames=frames)
    cli.main(args=kopf_args(list(sys.argv[1:] if argv is None else argv)), prog_name="kubeft-operator")


if __name__ == "__main__":
    main()
