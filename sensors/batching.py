"""Group commit for the websocket consumers of one server process.

Consumers ``submit`` samples and await their result. One writer task takes everything queued
(up to ``SQAL_BATCH_MAX_SAMPLES`` samples or ``SQAL_BATCH_MAX_BYTES``), stores it with
``services.ingest_samples`` in one transaction on a writer thread, then resolves each sample's
future: a consumer sends an ack only once its own sample is committed. Nothing waits on a timer:
while a batch is being written, the next one fills up, so batches grow with the load.

Up to ``SQAL_WRITERS`` batches are written at once, but a further writer starts only when what
waits is worth a transaction of its own (``SQAL_BATCH_PARALLEL_MIN_SAMPLES`` samples or
``SQAL_BATCH_PARALLEL_MIN_BYTES``); otherwise it waits for the running batch, which ends with
everything queued meanwhile. A batch costs a fixed three round trips and its Python around them:
with two writers always free, a light load (one station sending a window of frames) was split
into batches of two or three samples, and each sample paid twice the server CPU it pays in one
batch of ten (``bench/ingest.py``, compact messages). With twenty stations, a threshold of 64
samples against 16 cost 0.46-0.50 against 0.52-0.60 ms of server CPU per compact message at the
same or a better rate (two alternating runs each, 30 November 2026, load average 9-11).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import connection

from gaveurs import metrics
from sensors import live
from sensors.services import IngestResult, SampleInput, ingest_samples

logger = logging.getLogger(__name__)


def _ingest_in_thread(items: list[SampleInput], allow_unregistered: bool) -> list[IngestResult]:
    """Runs on a writer thread, which keeps its database connection from batch to batch.

    Django's per-request connection handling (close_old_connections, and the health check
    query it triggers) would cost a round trip per batch; instead the connection is dropped
    after a failure, so the next batch reconnects.
    """
    try:
        results = ingest_samples(items=items, allow_unregistered=allow_unregistered)
    except Exception:
        connection.close()
        raise
    if any(r.error_code == "storage_error" for r in results):
        connection.close()
    return results


class IngestBatcher:
    def __init__(self) -> None:
        self._queue: deque[tuple[SampleInput, asyncio.Future]] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._writers_count = max(1, settings.SQAL_WRITERS)
        # Writer threads, each with its own database connection: while one batch waits for
        # PostgreSQL, the next one is prepared and sent.
        self._executor = ThreadPoolExecutor(
            max_workers=self._writers_count, thread_name_prefix="sqal-writer"
        )
        self._writers = asyncio.Semaphore(self._writers_count)
        self._running = 0  # batches being written
        self._queued_bytes = 0
        self.batches = 0
        self.samples = 0

    async def submit(self, item: SampleInput) -> IngestResult:
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        self._queue.append((item, future))
        self._queued_bytes += len(item.payload)
        self._wakeup.set()
        metrics.sample_received()
        if self._task is None or self._task.done():
            # A context of its own: the writer serves every frame, not the one that started it
            # (its log lines must not carry that frame's request id).
            self._task = loop.create_task(self._run(), context=contextvars.Context())
        return await metrics.ack_timed(future)

    def _take_batch(self) -> list[tuple[SampleInput, asyncio.Future]]:
        batch: list[tuple[SampleInput, asyncio.Future]] = []
        size = 0
        while self._queue and len(batch) < settings.SQAL_BATCH_MAX_SAMPLES:
            item, future = self._queue[0]
            if batch and size + len(item.payload) > settings.SQAL_BATCH_MAX_BYTES:
                break
            self._queue.popleft()
            self._queued_bytes -= len(item.payload)
            if future.cancelled():
                continue
            batch.append((item, future))
            size += len(item.payload)
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue and self._may_start_writer():
                await self._writers.acquire()
                batch = self._take_batch()
                if not batch:
                    self._writers.release()
                    continue
                self._running += 1
                loop.create_task(self._write(batch))

    def _may_start_writer(self) -> bool:
        """The first writer starts for any queued sample; a further one only for a full enough
        batch (the running writer takes the rest when it is done)."""
        return (
            self._running == 0
            or len(self._queue) >= settings.SQAL_BATCH_PARALLEL_MIN_SAMPLES
            or self._queued_bytes >= settings.SQAL_BATCH_PARALLEL_MIN_BYTES
        )

    async def _write(self, batch: list[tuple[SampleInput, asyncio.Future]]) -> None:
        loop = asyncio.get_running_loop()
        items = [item for item, _ in batch]
        try:
            results = await loop.run_in_executor(
                self._executor,
                _ingest_in_thread,
                items,
                settings.SQAL_ALLOW_UNREGISTERED_DEVICES,
            )
        except Exception as exc:  # the consumers must hear about it, not hang
            logger.exception("batch of %d samples failed", len(items))
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        finally:
            self._running -= 1
            self._writers.release()
            self._wakeup.set()  # what queued meanwhile is the next batch
        self.batches += 1
        self.samples += len(items)
        metrics.batch_stored(results)
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
        live.feed().note(results)


_batchers: dict[int, IngestBatcher] = {}


def batcher() -> IngestBatcher:
    """The batcher of the running event loop (one per server process)."""
    loop = asyncio.get_running_loop()
    found = _batchers.get(id(loop))
    if found is None:
        found = _batchers[id(loop)] = IngestBatcher()
    return found
