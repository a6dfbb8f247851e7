"""A worker of several queues takes each job into its queue's intermediate list, as RQ does for
one queue, so that a worker killed right after the take does not lose the job (pure Redis logic:
fakeredis)."""

from __future__ import annotations

import time

import fakeredis
import pytest
from rq.exceptions import DequeueTimeout
from rq.serializers import JSONSerializer

from ingest_workers.runtime.worker import IngestQueue


def _queues(client: fakeredis.FakeRedis) -> tuple[IngestQueue, IngestQueue]:
    return (IngestQueue("main", connection=client, serializer=JSONSerializer),
            IngestQueue("main-children", connection=client, serializer=JSONSerializer))


def _enqueue(queue: IngestQueue, job_id: str) -> None:
    queue.enqueue_call("ingest_workers.runtime.jobs.fetch_source", args=({}, "run"), job_id=job_id)


def _dequeue(queues: tuple[IngestQueue, IngestQueue], client: fakeredis.FakeRedis, timeout: int | None) -> tuple:
    return IngestQueue.dequeue_any(queues, timeout, connection=client, serializer=JSONSerializer)


def test_a_job_taken_from_the_second_queue_stays_in_its_intermediate_list_until_it_starts() -> None:
    client = fakeredis.FakeRedis()
    main, children = _queues(client)
    _enqueue(children, "child-1")
    job, queue = _dequeue((main, children), client, 1)
    assert (job.id, queue.name) == ("child-1", "main-children")
    # RQ's BLPOP over several lists left it in none: a worker killed now would have lost it for good
    assert client.lrange(children.intermediate_queue_key, 0, -1) == [b"child-1"]
    assert children.count == 0


def test_the_queues_are_taken_in_order_and_an_empty_wait_ends_in_a_dequeue_timeout() -> None:
    client = fakeredis.FakeRedis()
    main, children = _queues(client)
    _enqueue(children, "child-1")
    _enqueue(main, "main-1")
    assert [_dequeue((main, children), client, 1)[0].id for _ in range(2)] == ["main-1", "child-1"]
    assert _dequeue((main, children), client, None) is None  # non-blocking: nothing waits
    started = time.monotonic()
    with pytest.raises(DequeueTimeout):
        _dequeue((main, children), client, 1)
    assert 0.9 <= time.monotonic() - started < 5  # the whole timeout, not one wait on the first queue
