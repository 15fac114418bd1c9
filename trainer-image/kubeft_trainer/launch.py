"""Container entry point: `python -m kubeft_trainer.launch <accelerate launch arguments>`.

Runs `accelerate launch` with the given arguments, and fixes the two things it does not do for a
Kubernetes Job (docs/DESIGN.md):

- exit codes: accelerate turns every non-zero exit of the trainer into 1, which would hide 64
  (user error), 65 (diverged) and 143 (preempted) from the Job's podFailurePolicy. Rank 0 of the
  trainer records its exit code in `$KUBEFT_WORKDIR/exit-code`; this launcher exits with it.
- SIGTERM: accelerate's single-process launcher dies on SIGTERM without passing it on, and the
  trainer is then killed before it can checkpoint. This launcher starts accelerate in its own
  process group with SIGTERM ignored (the trainer installs its own handler) and forwards SIGTERM
  and SIGINT to the whole group, then waits for it.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import subprocess
import sys

# Standard library only: the signal handlers must be in place before anything slow is imported.
DEFAULT_WORKDIR = "/var/lib/kubeft"
EXIT_CODE_FILE = "exit-code"
RESEND_SECONDS = 1.0


def exit_code_path(environ: dict[str, str] | os._Environ[str] | None = None) -> pathlib.Path:
    env = os.environ if environ is None else environ
    return pathlib.Path(env.get("KUBEFT_WORKDIR") or DEFAULT_WORKDIR) / EXIT_CODE_FILE


def record_exit_code(code: int) -> None:
    """Called by the trainer (rank 0) just before it exits."""
    path = exit_code_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(str(code))
    except OSError:
        pass


def _ignore_sigterm() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    recorded = exit_code_path()
    recorded.unlink(missing_ok=True)
    command = [sys.executable, "-m", "accelerate.commands.launch", *args]
    received: list[int] = []
    child: subprocess.Popen[bytes] | None = None

    def forward(signum: int, frame: object) -> None:
        received.append(signum)
        if child is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    child = subprocess.Popen(command, start_new_session=True, preexec_fn=_ignore_sigterm)
    print(f"kubeft launch: started accelerate (pid {child.pid}); forwarding SIGTERM", file=sys.stderr, flush=True)
    while True:
        try:
            returncode = child.wait(timeout=RESEND_SECONDS)
            break
        except subprocess.TimeoutExpired:
            # A signal that arrived while accelerate was still starting the trainer reached no
            # handler; repeat it until the trainer has it (its handler is idempotent).
            if received:
                forward(received[-1], None)
    try:
        return int(recorded.read_text().strip())
    except (OSError, ValueError):
        return returncode if returncode >= 0 else 128 - returncode


if __name__ == "__main__":
    raise SystemExit(main())
