"""``kubeft-operator`` / ``python -m kubeft_operator``: ``kopf run`` with kubeft's handlers.

Every ``kopf run`` option works (``--peering``, ``--standalone``, ``--namespace``,
``--liveness``, ``--verbose``); without ``--namespace`` the operator watches all namespaces.
"""

from __future__ import annotations

import sys

from kopf import cli

MODULE = "kubeft_operator.handlers"


def kopf_args(argv: list[str]) -> list[str]:
    """``kopf run`` arguments for ``kubeft-operator ARGV``: all namespaces unless told otherwise."""
    scoped = any(a in ("-A", "--all-namespaces", "-n") or a.startswith("--namespace") for a in argv)
    return ["run", f"--module={MODULE}", *([] if scoped else ["--all-namespaces"]), *argv]


def main(argv: list[str] | None = None) -> None:
    cli.main(args=kopf_args(list(sys.argv[1:] if argv is None else argv)), prog_name="kubeft-operator")


if __name__ == "__main__":
    main()
