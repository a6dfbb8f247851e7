"""How a job gets its resources: served by its worker (or an inline run), or its own from the environment;
a fork gets clients of its own."""

from __future__ import annotations

import dataclasses
import os

import pytest

from ingest_workers.core.config import Settings
from ingest_workers.core.redact import active
from ingest_workers.runtime.resources import Resources, for_job, serving, using


def test_a_job_takes_the_resources_it_is_served_and_their_redactor_is_active() -> None:
    res = Resources(Settings(queue="served"), {})
    with serving(res):
        with for_job() as got:
            assert got is res and active() is res.redactor
    assert active() is None


def test_outside_serving_a_job_gets_resources_of_its_own_from_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_QUEUE", "from-env")
    with for_job() as first:
        assert first.settings.queue == "from-env" and active() is first.redactor
    with for_job() as second:
        assert second is not first
    assert active() is None


@pytest.mark.integration  # res.redis connects (and pings)
def test_an_inline_run_serves_resources_of_its_settings_and_closes_them(settings: Settings) -> None:
    with using(dataclasses.replace(settings, queue="inline-q"), {"TOKEN": "x"}) as res:
        with for_job() as got:
            assert got is res and got.settings.queue == "inline-q" and got.env == {"TOKEN": "x"}
        client = res.redis
    assert res.redis is not client  # closed at the end of the block: a new one on next use


@pytest.mark.integration  # res.redis connects (and pings)
def test_a_forked_process_builds_clients_of_its_own(settings: Settings) -> None:
    res = Resources(settings, {})
    parent_client, parent_session = res.redis, res.http
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if it got new clients
        os._exit(0 if res.redis is not parent_client and res.http is not parent_session else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert res.redis is parent_client  # the parent keeps its own
