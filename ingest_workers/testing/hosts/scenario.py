"""The scenario, run on the producer host: the mock source on the services host, one worker
per worker host, the producer and the metrics server; then the faults (:mod:`.disruption`)
and the verdict (:mod:`.result`). It tells its story on stderr and in ``scenario.log``."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import redis

from ..netns import Host, Lab
from .disruption import Disruption
from .plan import METRICS_PORT, MOCK_PORT, HostsPlan, catalog_text, layout, urls
from .probes import Probes, scrape_loaded, until, wait_for_services
from .result import HostsResult, attempts_on, check, source_outcome

INGEST = [sys.executable, "-m", "ingest_workers"]


class Scenario:
    """``Scenario(lab, plan, log_dir, log).run()``: the run, and its verdict."""

    def __init__(self, lab: Lab, plan: HostsPlan, log_dir: Path, log: Callable[[str], None]) -> None:
        self.lab, self.plan, self.log_dir, self.log = lab, plan, log_dir, log
        self.services, self.producer, self.workers = layout(lab, plan)
        self.redis_url, self.database_url = urls()
        self.env = {"REDIS_URL": self.redis_url, "DATABASE_URL": self.database_url}
        self.started = time.monotonic()

    def say(self, words: str) -> None:
        line = f"[{time.monotonic() - self.started:5.1f}s] {words}"
        self.log(line)
        with (self.log_dir / "scenario.log").open("a", encoding="utf-8") as story:
            story.write(line + "\n")

    def run(self) -> HostsResult:
        result = HostsResult(jobs=self.plan.sources)
        client = wait_for_services(self.redis_url, self.database_url)
        probes = Probes(client, self.database_url)
        self._start_fleet(probes)
        producer = self._start_producer()
        self.started = time.monotonic()
        disruption = Disruption(self.lab, self.plan, probes, self.workers, self._start_workers, self.say)
        disruption.run(self.started)
        result.takeovers = disruption.takeovers
        try:
            result.producer_status = producer.wait(timeout=self.plan.timeout + 30)
        except subprocess.TimeoutExpired:
            producer.kill()
            result.producer_status = producer.wait()
        result.elapsed = time.monotonic() - self.started
        self.say(f"producer exited with status {result.producer_status}")
        verdict = check(self.database_url, self.plan)
        result.take_verdict(verdict)
        result.rejoined = self._rejoined(client, probes, disruption.cut_host, disruption.cut_job,
                                         source_outcome(verdict, probes.source_of(disruption.cut_job)))
        result.metrics_loaded = scrape_loaded(f"http://{self.producer.address}:{METRICS_PORT}/metrics",
                                              self.plan.source_names)
        return result

    def _start_fleet(self, probes: Probes) -> None:
        """The mock source, the schema, and one worker per worker host (until each is registered)."""
        self.lab.run(self.services, [*INGEST, "mock-sources", "--host", self.services.address, "--port",
                                     str(MOCK_PORT), "--records", str(self.plan.records), "--latency",
                                     str(self.plan.latency), "--invalid-every", str(self.plan.invalid_every)],
                     {}, self._log_file("services-mock"))
        subprocess.run([*INGEST, "db", "migrate"], env=self.env, check=True, stdout=subprocess.DEVNULL)
        for host in self.workers:
            self._start_workers(host)
        until(lambda: len(probes.workers()) == len(self.workers), 60, "every worker host's worker")
        self.say(f"{len(self.workers)} worker hosts up: {', '.join(sorted(w.name for w in probes.workers()))}")

    def _start_producer(self) -> subprocess.Popen[bytes]:
        """The metrics server, and ``ingest enqueue --sources all --wait`` (returned: the run ends with it)."""
        catalog = self.log_dir / "hosts-catalog.toml"
        catalog.write_text(catalog_text(self.plan, self.services.address), encoding="utf-8")
        self.lab.run(self.producer, [*INGEST, "metrics-server", "--host", self.producer.address, "--port",
                                     str(METRICS_PORT)], self.env, self._log_file("producer-metrics"))
        return self.lab.run(self.producer, [*INGEST, "enqueue", "--sources", "all", "--wait", "--timeout",
                                            str(self.plan.timeout)],
                            {**self.env, "INGEST_CATALOG": str(catalog)}, self._log_file("producer-enqueue"))

    def _rejoined(self, client: redis.Redis, probes: Probes, host: Host, job_id: str, keys: str) -> str:
        """What ``host`` did with ``job_id`` after it came back, how its keys ended, and that it works again."""
        until(lambda: probes.has_workers(host.name), 60, f"{host.name}'s worker to be registered again")
        ends = attempts_on(client, job_id, host.name)
        said = "; then ".join(ends) if ends else "no attempt of it ended there (its work horse was stopped)"
        return f"{host.name} on {job_id}: {said}; {keys}; its worker is back"

    def _start_workers(self, host: Host) -> None:
        self.lab.run(host, [*INGEST, "workers", "--count", "1"], self.env, self._log_file(host.name))

    def _log_file(self, name: str) -> IO[bytes]:
        return (self.log_dir / f"{name}.log").open("ab")
