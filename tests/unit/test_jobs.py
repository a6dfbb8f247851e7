"""The RQ failure callback: retry what may pass (and count it), fail the rest at once."""

import fakeredis
import pytest
from rq import Queue, Retry
from rq.serializers import JSONSerializer

from ingest_workers.core.errors import PermanentError, TransientError
from ingest_workers.ops.metrics import JOB_RETRIES, read_counters
from ingest_workers.runtime import jobs


@pytest.mark.parametrize(("error", "retries_left", "counted"),
                         [(TransientError("HTTP 503"), 2, 1), (PermanentError("HTTP 404"), 0, 0)])
def test_on_failure_keeps_retries_only_for_transient_errors(error: Exception, retries_left: int,
                                                             counted: int) -> None:
    client = fakeredis.FakeRedis()
    queue = Queue("ingest", connection=client, serializer=JSONSerializer)
    job = queue.enqueue("ingest_workers.runtime.jobs.fetch_source", args=({}, "run-1"), retry=Retry(max=2),
                        meta={"source": "shop", "run_id": "run-1"})
    jobs.on_failure(job, client, type(error), error, None)
    assert job.retries_left == retries_left
    assert read_counters(client, JOB_RETRIES, [("shop",)]) == [counted]
