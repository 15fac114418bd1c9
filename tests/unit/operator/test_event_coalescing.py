"""handlers.WorkQueue: watch events become reconciles of their FineTuneJob, one per key at a time,
in arrival order, with no copy of the event kept while the reconcile waits."""

from __future__ import annotations

import asyncio

from kubeft_operator import handlers
from kubeft_operator.reconciler import Key

A, B, C = ("ns", "a"), ("ns", "b"), ("ns", "c")


class Recorder:
    """A reconcile that records which keys it started and holds each until released."""

    def __init__(self) -> None:
        self.started: list[Key] = []
        self.running: set[Key] = set()
        self.most_at_once = 0
        self.gate = asyncio.Event()

    async def __call__(self, key: Key) -> None:
        assert key not in self.running, f"{key} reconciled twice at once"
        self.started.append(key)
        self.running.add(key)
        self.most_at_once = max(self.most_at_once, len(self.running))
        try:
            await self.gate.wait()
        finally:
            self.running.discard(key)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def test_events_for_a_waiting_key_cost_one_reconcile() -> None:
    async def go() -> list[Key]:
        rec = Recorder()
        rec.gate.set()
        queue = handlers.WorkQueue(rec, workers=1)
        queue.add(A)
        queue.add(B)
        queue.add(A)
        queue.add(A)
        await settle()
        await queue.close()
        return rec.started

    assert asyncio.run(go()) == [A, B]


def test_an_event_during_a_reconcile_reconciles_the_key_again_after_it() -> None:
    async def go() -> list[Key]:
        rec = Recorder()
        queue = handlers.WorkQueue(rec, workers=2)
        queue.add(A)
        await settle()
        queue.add(A)  # A is running: not a second reconcile of A at once
        queue.add(A)
        queue.add(B)
        await settle()
        rec.gate.set()
        await settle()
        await queue.close()
        return rec.started

    assert asyncio.run(go()) == [A, B, A]


def test_no_more_reconciles_run_at_once_than_workers() -> None:
    async def go() -> tuple[int, list[Key]]:
        rec = Recorder()
        queue = handlers.WorkQueue(rec, workers=2)
        for key in (A, B, C):
            queue.add(key)
        await settle()
        at_once = rec.most_at_once
        rec.gate.set()
        await settle()
        await queue.close()
        return at_once, rec.started

    at_once, started = asyncio.run(go())
    assert at_once == 2
    assert started == [A, B, C]


def test_a_reconcile_that_raises_does_not_stop_its_worker() -> None:
    seen: list[Key] = []

    async def reconcile(key: Key) -> None:
        seen.append(key)
        if key == A:
            raise RuntimeError("boom")

    async def go() -> None:
        queue = handlers.WorkQueue(reconcile, workers=1)
        queue.add(A)
        queue.add(B)
        await settle()
        await queue.close()

    asyncio.run(go())
    assert seen == [A, B]


def test_new_finetunejobs_are_reconciled_before_older_ones_follow_their_pods() -> None:
    async def go() -> list[Key]:
        rec = Recorder()
        rec.gate.set()
        queue = handlers.WorkQueue(rec, workers=1)
        queue.add(A)  # e.g. a pod event of an older job
        queue.add(B, new=True)
        queue.add(C, new=True)
        await settle()
        await queue.close()
        return rec.started

    assert asyncio.run(go()) == [B, C, A]
