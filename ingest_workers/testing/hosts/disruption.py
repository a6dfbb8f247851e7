"""The faults of a hosts run: ``worker1`` cut off the network while busy and plugged back in
after ``cut_seconds``; (full run) every process of ``worker2`` SIGKILLed while busy and the
host started again after ``down_seconds``. Meanwhile it watches, in ``ingest_jobs`` and RQ's
worker registry, for another host to start each lost job again."""

from __future__ import annotations

import time
from collections.abc import Callable

from ..netns import Host, Lab
from .plan import HostsPlan
from .probes import Probes
from .result import Takeover


class Disruption:
    """One run of the faults; afterwards :attr:`takeovers` and :attr:`cut_job` tell what happened."""

    def __init__(self, lab: Lab, plan: HostsPlan, probes: Probes, workers: list[Host],
                 start_workers: Callable[[Host], None], say: Callable[[str], None]) -> None:
        self.lab, self.plan, self.probes, self.say = lab, plan, probes, say
        self.cut_host = workers[0]
        self.victim = workers[1] if plan.kill and len(workers) > 1 else None
        self._start_workers = start_workers
        self.cut_job = ""
        self.takeovers: list[Takeover] = []
        self._lost_at: dict[str, float] = {}
        self._attempts: dict[str, int] = {}
        self._cut_at = 0.0
        self._kill_at: float | None = None
        self._restored_at: float | None = None
        self._restarted_at: float | None = None

    def run(self, started: float) -> None:
        """Cut, kill and bring back, until every job ended (or the plan's timeout since ``started``)."""
        self.cut_job = self.probes.busy_job(self.cut_host.name)
        self.lab.cut(self.cut_host)
        self._cut_at = time.monotonic()
        self.say(f"{self.cut_host.name} cut off the network (link down) while running {self.cut_job}")
        self._lost(self.cut_host, self.cut_job, self._cut_at)
        while time.monotonic() - started < self.plan.timeout:
            now = time.monotonic()
            self._kill_and_restart(now)
            if self._restored_at is None and now - self._cut_at >= self.plan.cut_seconds:
                self.lab.restore(self.cut_host)
                self._restored_at = now
                self.say(f"{self.cut_host.name} back on the network after {now - self._cut_at:.0f}s")
            self._watch_takeovers(now)
            if self._disrupted() and self.probes.finished(self.plan.source_names) >= self.plan.sources:
                break
            time.sleep(0.5)
        if self._restored_at is None:  # the run ended (or timed out) within the cut
            self.lab.restore(self.cut_host)
            self._restored_at = time.monotonic()

    def _disrupted(self) -> bool:
        """Every fault happened and was undone."""
        return self._restored_at is not None and (self.victim is None or self._restarted_at is not None)

    def _kill_and_restart(self, now: float) -> None:
        victim = self.victim
        if victim is None:
            return
        if self._kill_at is None and (job := self.probes.busy_job(victim.name, wait=False)):
            killed = self.lab.kill_all(victim)
            self._kill_at = time.monotonic()
            self._lost(victim, job, self._kill_at)
            self.say(f"{victim.name}: all {killed} processes SIGKILLed while running {job}")
        elif self._kill_at is not None and self._restarted_at is None and now - self._kill_at >= self.plan.down_seconds:
            self._start_workers(victim)
            self._restarted_at = now
            self.say(f"{victim.name} started again after {now - self._kill_at:.0f}s")

    def _lost(self, host: Host, job_id: str, at: float) -> None:
        self.takeovers.append(Takeover(host.name, job_id))
        self._lost_at[job_id] = at
        self._attempts[job_id] = self.probes.attempts(job_id)

    def _watch_takeovers(self, now: float) -> None:
        """A lost job was taken over when another attempt of it started."""
        for takeover in self.takeovers:
            if takeover.seconds is None and self.probes.attempts(takeover.job_id) > self._attempts[takeover.job_id]:
                takeover.seconds = now - self._lost_at[takeover.job_id]
                takeover.by = self.probes.runner(takeover.job_id)
                self.say(f"{takeover.job_id} started again {takeover.seconds:.1f}s after {takeover.host} was "
                         f"lost, by {takeover.by or 'a worker that finished it before it was seen'}")
