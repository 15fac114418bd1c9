"""A rank that stops because another process of its group went away exits 67 (restart with the group,
not counted); the rank that caused it keeps its own code. What counts as "went away" is decided here."""

from __future__ import annotations

import pytest

from kubeft_trainer import errors

GLOO = (
    "[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:561] Connection closed by peer "
    "[10.250.0.7]:36521. This is typically caused by a remote worker crashing."
)  # what torch 2.x raised in a 2-machine gloo run here when the other machine's rank exited


class DistNetworkError(RuntimeError):
    """Named like torch.distributed's typed error, which newer backends raise."""


@pytest.mark.parametrize(
    ("exc", "want"),
    [
        (RuntimeError(GLOO), True),
        (RuntimeError("Connection reset by peer"), True),
        (DistNetworkError("store went away"), True),
        (RuntimeError("CUDA out of memory"), False),
        (ValueError("Connection closed by peer"), False),  # only what a collective raises
        (errors.OutputFailed("upload failed"), False),
    ],
)
def test_peer_lost_recognises_what_a_collective_raises_when_a_peer_is_gone(exc, want):
    assert errors.peer_lost(exc) is want


def test_peer_lost_looks_through_the_errors_it_was_raised_from():
    try:
        try:
            raise RuntimeError(GLOO)
        except RuntimeError as inner:
            raise errors.OutputFailed("checkpoint upload interrupted") from inner
    except errors.OutputFailed as outer:
        assert errors.peer_lost(outer)


def test_peer_stopped_restarts_like_a_preemption_with_its_own_uncounted_code():
    stopped = errors.PeerStopped("another pod of the group got SIGTERM", step=4)
    assert isinstance(stopped, errors.Preempted)
    assert (stopped.exit_code, stopped.reason, stopped.step) == (67, "PeerStopped", 4)
