"""sensors.batching: group commit, and when a second writer may start."""

from __future__ import annotations

import asyncio
import threading
from unittest import mock

import pytest
from django.db import connections

from sensors import batching
from sensors.batching import IngestBatcher
from sensors.models import SensorSample
from sensors.schemas import Reading, parse_message
from sensors.services import SampleInput
from tests.support.servers import wait_for_sessions_to_close
from tests.support.stations import message

# The writer threads use database connections of their own: their rows must be committed.
pytestmark = pytest.mark.django_db(transaction=True)


def _item(sample_id: str) -> SampleInput:
    text = message(sample_id)
    return SampleInput(
        reading=Reading.from_message(parse_message(text, max_bytes=10**6)), payload=text
    )


async def _yield_to_the_loop(times: int = 5) -> None:
    for _ in range(times):
        await asyncio.sleep(0)


async def _send_while_a_batch_is_written(batcher: IngestBatcher) -> list[str]:
    """One sample, then two groups of five while the first one's batch is being written (its
    writer is held until both groups are queued, so the outcome does not depend on how fast
    the machine writes one sample)."""
    first_started, release_first = threading.Event(), threading.Event()
    write = batching._ingest_in_thread

    def held_write(items, allow_unregistered):
        if [item.reading.sample_id for item in items] == ["W0"]:
            first_started.set()
            release_first.wait(timeout=30)
        return write(items, allow_unregistered)

    loop = asyncio.get_running_loop()
    with mock.patch.object(batching, "_ingest_in_thread", held_write):
        submitted = [asyncio.ensure_future(batcher.submit(_item("W0")))]
        assert await loop.run_in_executor(None, first_started.wait, 30)
        submitted += [asyncio.ensure_future(batcher.submit(_item(f"W1{n}"))) for n in range(5)]
        await _yield_to_the_loop()
        submitted += [asyncio.ensure_future(batcher.submit(_item(f"W2{n}"))) for n in range(5)]
        await _yield_to_the_loop()
        release_first.set()
        results = await asyncio.gather(*submitted)
    return [r.status for r in results]


def _run(settings, **overrides) -> tuple[list[str], int]:
    for name, value in overrides.items():
        setattr(settings, name, value)
    settings.SQAL_ALLOW_UNREGISTERED_DEVICES = True

    async def scenario():
        batcher = IngestBatcher()
        try:
            return await _send_while_a_batch_is_written(batcher), batcher.batches
        finally:
            # Each writer thread closes its own database connection (the barrier makes every
            # thread take one of these calls) before it ends.
            barrier = threading.Barrier(settings.SQAL_WRITERS)

            def close() -> None:
                barrier.wait(timeout=10)
                connections.close_all()

            loop = asyncio.get_running_loop()
            await asyncio.gather(
                *(
                    loop.run_in_executor(batcher._executor, close)
                    for _ in range(settings.SQAL_WRITERS)
                )
            )
            batcher._executor.shutdown(wait=True)

    try:
        return asyncio.run(scenario())
    finally:
        wait_for_sessions_to_close()


def test_a_light_load_waits_for_the_running_batch_instead_of_splitting_into_small_ones(settings):
    statuses, batches = _run(settings, SQAL_WRITERS=2, SQAL_BATCH_PARALLEL_MIN_SAMPLES=16)
    assert statuses == ["saved"] * 11
    # The ten samples that arrived while the first batch was written make one batch, not two.
    assert batches == 2
    assert SensorSample.objects.count() == 11
    assert SensorSample.objects.values("received_at").distinct().count() == 2


def test_enough_waiting_samples_start_a_second_writer_at_once(settings):
    statuses, batches = _run(
        settings,
        SQAL_WRITERS=2,
        SQAL_BATCH_PARALLEL_MIN_SAMPLES=5,
        SQAL_BATCH_PARALLEL_MIN_BYTES=10**9,
    )
    assert statuses == ["saved"] * 11
    # Five waiting samples are enough: the second writer takes them while the first writes,
    # and the last five wait for a free writer.
    assert batches == 3
    assert SensorSample.objects.count() == 11
