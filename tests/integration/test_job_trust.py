"""A job read from Redis is parsed before anything in it is used: whoever can write to Redis can
write a job, and must not be able to make a worker import a module INGEST_PLUGINS does not allow
(anywhere in the job: its kind, stages, sinks, its dataset declaration's stages and prepare stages,
or a key added later), nor read a variable INGEST_SOURCE_VARS does not allow."""

from __future__ import annotations

import copy
import dataclasses
import os
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg2.extensions
import pytest
import redis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from ingest_workers.catalog import load_catalog
from ingest_workers.core.config import Settings
from ingest_workers.load.migrate import migrate
from ingest_workers.ops.failed import FailedJobs
from ingest_workers.ops.watch import wait_for_jobs
from ingest_workers.runtime.producer import make_queue
from ingest_workers.runtime.workerpool import local_workers

pytestmark = pytest.mark.integration
FETCH = "ingest_workers.runtime.jobs.fetch_source"
REFUSED = "ingest_workers.core.errors.Refused: "
# A job of a declared dataset using every part that can name code, each with a built-in name; its
# source is a closed port, so a job that is not refused fails at its first request.
CATALOG = """
[datasets.trust_items]
key = ["item_id"]
write = "merge"
version_column = "updated"
time_column = "updated"
stats = true
indexes = [["score"]]
stages = [{ name = "threshold", field = "score", maximum = 10.0 }]
prepare = ["sentiment"]

[datasets.trust_items.columns]
item_id = { type = "text", max_length = 40 }
score = { type = "numeric", min = 0 }
updated = { type = "timestamp" }

[sources.trust_probe]
kind = "http_json"
dataset = "trust_items"
url = "http://127.0.0.1:1/items"
fields = { item_id = "id" }
constants = { score = 1 }
stages = ["normalise", { name = "moving_average", window = 3 }]
sinks = ["console"]
options = { note = "x" }
params = { q = "x" }
headers = { "X-Note" = "x" }
"""
FOREIGN = ("tests.trust_marker:Anything", "tests.trust_marker:NoSuchClass")
Path_ = tuple[str | int, ...]


def base_job(tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "catalog.toml").write_text(CATALOG, encoding="utf-8")
    return load_catalog(tmp_path / "catalog.toml", {}).sources["trust_probe"].to_dict()


def positions(value: Any, path: Path_ = ()) -> Iterator[Path_]:
    """Every place of a job a name could be put, found by walking it (so a key added later is
    walked too): each value at any depth, each list's next entry, and a 'name' key in each table
    that has none."""
    if path:
        yield path
    if isinstance(value, dict):
        if "name" not in value:
            yield (*path, "name")
        for key, item in value.items():
            yield from positions(item, (*path, key))
    elif isinstance(value, list):
        yield (*path, len(value))
        for index, item in enumerate(value):
            yield from positions(item, (*path, index))


def put(job: dict[str, Any], path: Path_, entry: Any) -> dict[str, Any]:
    """``job`` with ``entry`` at ``path`` (appended when the path is a list's next entry)."""
    changed = copy.deepcopy(job)
    target: Any = changed
    for key in path[:-1]:
        target = target[key]
    if isinstance(target, list) and path[-1] == len(target):
        target.append(entry)
    else:
        target[path[-1]] = entry
    return changed


# A foreign name as a job can write it: bare, as a stage or sink table, one level deeper in a list.
entries = st.sampled_from(FOREIGN).flatmap(lambda name: st.sampled_from(
    [name, {"name": name}, {"name": name, "args": ["touch", "owned"]}, [name], [{"name": name}]]))


def run_jobs(redis_client: redis.Redis, settings: Settings, jobs: dict[str, dict[str, Any]], env: dict[str, str],
             log: Path) -> dict[str, str]:
    """Enqueue ``jobs`` (id -> source) as an attacker would, run them through two real IngestWorkers;
    return the failed ones' errors, by id."""
    queue = make_queue(redis_client, settings)
    for job_id, source in jobs.items():
        queue.enqueue_call(FETCH, args=(source, "run-trust"), job_id=job_id)
    # A worker sometimes takes RQ's warm shutdown slowly; its jobs are over by then.
    with local_workers(settings, 2, env, log, stop_timeout=5):
        state = wait_for_jobs(queue, list(jobs), lambda state: None, timeout=120)
    assert state.done == len(jobs), log.read_text()
    return {job.job_id: job.error for job in FailedJobs(queue).list() if job.job_id in jobs}


# Each example is two bursts of real workers: few examples, no shrinking (a failure names its place).
@hypothesis_settings(max_examples=2, deadline=None, phases=[Phase.explicit, Phase.generate],
                     suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_no_job_imports_a_module_the_worker_does_not_allow(
        data: st.DataObject, redis_client: redis.Redis, pg: psycopg2.extensions.connection, settings: Settings,
        tmp_path: Path) -> None:
    """A foreign module's name in every place of a job, each in a form hypothesis picks. The worker
    (INGEST_PLUGINS=tests.plugins) imports none; and each job a worker that *allows* the module
    imports it from was refused by the one that does not (the places that name code are found by
    the allowing worker, not listed here)."""
    example = uuid.uuid4().hex[:8]
    base = base_job(tmp_path)
    migrate(pg, [load_catalog(tmp_path / "catalog.toml", {}).datasets["trust_items"]])
    places = list(positions(base))
    # A source name of its own each: the failing ones would open a shared circuit and defer the rest.
    jobs = {f"{example}-{i}": put({**base, "name": f"trust_{i}"}, path, data.draw(entries, label=repr(path)))
            for i, path in enumerate(places)}
    marker = tmp_path / f"imported-{example}"
    env = {**os.environ, "TRUST_MARKER": str(marker)}
    failed = run_jobs(redis_client, dataclasses.replace(settings, http_max_attempts=1), jobs, env,
                      tmp_path / f"workers-{example}.log")
    assert not marker.exists(), f"imported by {marker.read_text()}"
    refused = {job_id for job_id, error in failed.items() if error.startswith(REFUSED)}
    assert set(failed) == set(jobs)  # the source is a closed port: no job can succeed
    by_place = dict(zip(places, jobs, strict=True))
    assert len(refused) < len(jobs) - 10  # the places that name no code (url, params, ...) were walked too
    for code in [("kind",), ("stages", 0), ("sinks", 0), ("declaration", "prepare", 0),
                 ("declaration", "stages", 0)]:
        assert by_place[code] in refused, (code, failed[by_place[code]])
    allowing = dataclasses.replace(settings, plugins="tests.plugins,tests.trust_marker", http_max_attempts=1)
    others = {job_id: source for job_id, source in jobs.items() if job_id not in refused}
    redis_client.flushdb()
    run_jobs(redis_client, allowing, others, env, tmp_path / f"allowing-{example}.log")
    imported = set(marker.read_text().split()) if marker.exists() else set()
    assert not imported, [next(p for p, j in by_place.items() if j == job_id) for job_id in imported]


class Recorder(BaseHTTPRequestHandler):
    """A source host that remembers every request line it is sent."""

    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        Recorder.seen.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"[]")

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_the_attack_its_stages_twin_and_a_variable_are_refused(
        redis_client: redis.Redis, settings: Settings, tmp_path: Path) -> None:
    """The issue's attack: a declaration whose prepare (or stages) names subprocess:Popen with
    ``touch``; and a job whose URL reads a variable of the worker's environment (INGEST_SOURCE_VARS
    unset: none may be read). Each fails with one sentence; nothing runs, nothing is sent."""
    host = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=host.serve_forever, daemon=True).start()
    Recorder.seen.clear()
    owned = tmp_path / "owned"
    touch = {"name": "subprocess:Popen", "args": ["touch", str(owned)]}
    base = base_job(tmp_path)
    url = f"http://127.0.0.1:{host.server_address[1]}/items?k=${{TRUST_PLANTED}}"
    jobs = {"prepare": put(base, ("declaration", "prepare"), [touch]),
            "stages": put(base, ("declaration", "stages"), [touch]),
            "variable": {**put(base, ("url",), url), "declaration": None, "dataset": "posts",
                         "fields": {"post_id": "id", "user_id": "userId"}, "constants": {}, "stages": None}}
    env = {**os.environ, "TRUST_PLANTED": "planted-value-3c1e"}
    unset = dataclasses.replace(settings, source_vars=None)  # INGEST_SOURCE_VARS unset
    try:
        failed = run_jobs(redis_client, unset, jobs, env, tmp_path / "workers.log")
    finally:
        host.shutdown()
    assert failed == {
        "prepare": f"{REFUSED}source trust_probe key 'declaration' key 'prepare': stage 'subprocess:Popen': module "
                   "subprocess is not allowed by INGEST_PLUGINS (tests.plugins)",
        "stages": f"{REFUSED}source trust_probe key 'declaration' key 'stages': stage 'subprocess:Popen': module "
                  "subprocess is not allowed by INGEST_PLUGINS (tests.plugins)",
        "variable": f"{REFUSED}source trust_probe: variable TRUST_PLANTED is not allowed by INGEST_SOURCE_VARS "
                    "(unset: no variables); allow what the worker's sources need in its environment, e.g. "
                    "INGEST_SOURCE_VARS=CRM_*,SHOP_TOKEN (names, or prefixes ending in '*')",
    }
    assert not owned.exists() and Recorder.seen == []
