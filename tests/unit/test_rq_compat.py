"""The RQ details ``runtime.rq_compat`` relies on still hold in the installed RQ (an upgrade that
changes one fails here)."""

from __future__ import annotations

import inspect

from rq import Callback, Queue
from rq.serializers import JSONSerializer

from ingest_workers.runtime.rq_compat import SYNC_WORKER_NAME, callback_names, create_job_kwargs, runs_synchronously


def _queue() -> Queue:
    # no command reaches Redis: create_job and to_dict only build objects
    from redis import Redis
    return Queue("compat", connection=Redis(port=1), serializer=JSONSerializer)


def test_callback_names_are_read_as_stored_without_importing_them() -> None:
    job = _queue().create_job("ingest_workers.runtime.jobs.fetch_source", args=({}, "r"),
                              on_success=Callback("no.such.module.on_success"),
                              on_failure=Callback("no.such.module.on_failure"),
                              on_stopped=Callback("no.such.module.on_stopped"))
    assert callback_names(job) == ["no.such.module.on_success", "no.such.module.on_failure",
                                   "no.such.module.on_stopped"]


def test_a_job_without_callbacks_names_none() -> None:
    assert callback_names(_queue().create_job("ingest_workers.runtime.jobs.fetch_source", args=())) == []


def test_every_prepared_field_but_at_front_is_a_create_job_argument() -> None:
    data = Queue.prepare_data("ingest_workers.runtime.jobs.fetch_source", args=(1,), job_id="j1",
                              description="d", timeout=30, meta={"source": "s"},
                              on_failure=Callback("ingest_workers.runtime.jobs.on_failure"), at_front=True)
    kwargs = create_job_kwargs(data)
    assert "at_front" not in kwargs
    assert set(kwargs) <= set(inspect.signature(Queue.create_job).parameters)
    job = _queue().create_job(**kwargs)
    assert (job.id, job.args, job.description, job.timeout, job.meta) == ("j1", (1,), "d", 30, {"source": "s"})
    assert callback_names(job) == ["ingest_workers.runtime.jobs.on_failure"]


def test_the_worker_hook_that_serves_a_job_its_resources_keeps_its_signature() -> None:
    from rq.worker import SimpleWorker, Worker

    # runtime.worker.OnlyIngestJobs.perform_job wraps RQ's; RQ calls it from both worker classes
    assert list(inspect.signature(Worker.perform_job).parameters) == ["self", "job", "queue", "execution"]
    assert SimpleWorker.perform_job is Worker.perform_job


def test_the_synchronous_mode_names_its_worker_as_runs_synchronously_expects() -> None:
    # runtime.jobs.handoff keeps an inline run's child jobs out of Redis by this name
    assert f"prepare_for_execution({SYNC_WORKER_NAME!r}" in inspect.getsource(Queue.run_sync)
    job = _queue().create_job("ingest_workers.runtime.jobs.fetch_source", args=())
    assert not runs_synchronously(job) and not runs_synchronously(None)
    job.worker_name = SYNC_WORKER_NAME
    assert runs_synchronously(job)


def test_a_dequeue_of_several_queues_goes_through_the_lpop_and_lmove_ingest_queue_relies_on() -> None:
    from rq.worker import Worker

    # runtime.worker.IngestQueue.lpop replaces RQ's BLPOP over several queues with LMOVE into each
    # queue's intermediate list; IngestWorker.prepare_job_execution then always takes it out of there
    assert "cls.lpop(queue_keys, timeout, connection=connection)" in inspect.getsource(Queue.dequeue_any)
    assert list(inspect.signature(Queue.lmove).parameters) == ["connection", "queue_key", "timeout"]
    assert list(inspect.signature(Worker.prepare_job_execution).parameters) == [
        "self", "job", "remove_from_intermediate_queue"]
