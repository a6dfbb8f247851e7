"""Start, watch and stop local ``rq worker`` processes (``ingest workers``, ``ingest run``, the demo).

They are the same workers an operator runs by hand: :func:`worker_command` is the
documented invocation, so what the demo exercises is what production runs.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

from ..core.config import ENV_VARS, Settings
from ..core.connections import redis_for
from ..core.errors import ServiceRefused, ServiceUnavailable
from .interrupt import StopNow
from .lifeline import POOL_DIED, parent_death_hook

Process = subprocess.Popen[bytes]
Say = Callable[[str], None]
DEFAULT_WORKER_CLASS = "ingest_workers.runtime.worker.IngestWorker"
QUIET_STOP = 2.0  # seconds a stop waits for its workers before it says so


def worker_command(settings: Settings, name: str, worker_class: str | None = None,
                   queues: Sequence[str] = ()) -> list[str]:
    """``rq worker`` with the JSON serializer, the scheduler that runs delayed retries and
    deferred jobs, and short deadlines for noticing a dead worker (see :mod:`ingest_workers.runtime.worker`).

    No Redis URL: every local user can read a process's arguments (``/proc/PID/cmdline``), so the
    URL and its password reach ``rq worker`` in its environment (``RQ_REDIS_URL``, :func:`worker_env`),
    or, through Sentinel, RQ's ``SENTINEL`` setting built from that environment."""
    return [sys.executable, "-m", "rq.cli", "worker", "--serializer", "json", "--with-scheduler",
            "--name", name, *redis_options(settings),
            "--worker-class", worker_class or DEFAULT_WORKER_CLASS,
            "--queue-class", "ingest_workers.runtime.worker.IngestQueue",
            "--job-monitoring-interval", str(settings.job_monitoring_interval),
            "--maintenance-interval", str(settings.maintenance_interval),
            "--worker-ttl", str(settings.worker_ttl), *(queues or [settings.queue])]


def redis_options(settings: Settings) -> list[str]:
    """How ``rq worker`` finds Redis beyond ``RQ_REDIS_URL``: through Sentinel, RQ's ``SENTINEL``
    setting in :mod:`ingest_workers.runtime.rq_config` (built from the worker's environment, never argv)."""
    return ["--config", "ingest_workers.runtime.rq_config"] if settings.redis_sentinels else []


def worker_env(settings: Settings, base: Mapping[str, str]) -> dict[str, str]:
    """The environment that makes a worker see the same settings as this process (``rq worker``
    itself reads its Redis URL from ``RQ_REDIS_URL``)."""
    env = dict(base)
    for name, variable in ENV_VARS.items():
        value = getattr(settings, name)
        if value is not None:
            env[variable] = str(value)
    if settings.redis_sentinels:
        env.pop("RQ_REDIS_URL", None)  # rq prefers a URL to its --config: the Sentinel master would be ignored
    else:
        env["RQ_REDIS_URL"] = settings.redis_url
    return env


def worker_name(index: int) -> str:
    """Unique across hosts and runs: host name, this process's pid, worker number."""
    return f"{socket.gethostname()}.{os.getpid()}.{index}"


def start_worker(settings: Settings, index: int, env: Mapping[str, str], log: IO[bytes] | None,
                 worker_class: str | None = None, queues: Sequence[str] = ()) -> Process:
    """One ``rq worker`` on ``queues`` (in priority order; default: the settings' queue); its
    output goes to ``log`` (None: this process's stdout and stderr).

    It gets a session of its own: a signal sent to our process group (Ctrl+C in a
    terminal, a process manager's killpg) would otherwise also reach the worker's
    job child directly and kill the job mid-batch; instead :func:`stop_workers`
    gives each worker RQ's warm shutdown. Should this process die without stopping it
    (SIGKILL, OOM), the kernel sends the worker :data:`~.lifeline.POOL_DIED`: a cold shutdown
    (its job is handed back as RQ's abandoned job), and its scheduler and horse die with it
    (:mod:`.lifeline`): nothing is left behind.
    """
    return subprocess.Popen(worker_command(settings, worker_name(index), worker_class, queues),
                            env=worker_env(settings, env), stdin=subprocess.DEVNULL,
                            stdout=log, stderr=subprocess.STDOUT if log else None, start_new_session=True,
                            preexec_fn=parent_death_hook(POOL_DIED))


def redis_down(settings: Settings) -> str | None:
    """Why Redis does not answer (one sentence, URL masked), or None when it does: a worker that
    died while Redis is down is not restarted into it (it would only die again, every second).
    Raises :class:`ServiceRefused` (e.g. a password no longer accepted): no wait can fix that."""
    try:
        redis_for(settings, timeout=1.0).close()
    except ServiceRefused:
        raise
    except ServiceUnavailable as exc:
        return str(exc)
    return None


def stop_workers(processes: list[Process], timeout: float = 30.0, say: Say = lambda words: None) -> None:
    """SIGTERM (RQ's warm shutdown: the current job finishes), then :func:`kill_workers` after
    ``timeout``. A stop that waits says so, through ``say``, after :data:`QUIET_STOP` seconds (an
    idle worker takes about one to stop its scheduler, more on a loaded machine)."""
    running = [process for process in processes if process.poll() is None]
    for process in running:
        process.send_signal(signal.SIGTERM)
    quiet = min(QUIET_STOP, timeout)
    if _wait_all(running, quiet):
        return
    busy = [process for process in running if process.poll() is None]
    if timeout > quiet:
        say(f"waiting for {len(busy)} worker(s) (pid {', '.join(str(p.pid) for p in busy)}) to stop (a job in "
            f"hand finishes first), up to {timeout:g}s in all; then they are killed")
    if not _wait_all(busy, timeout - quiet):
        say(f"{sum(p.poll() is None for p in busy)} worker(s) did not stop within {timeout:g}s: killed")
        kill_workers(busy)


def kill_workers(processes: list[Process]) -> None:
    """SIGKILL each worker's process group (the worker and its scheduler; a work horse, in a group
    of its own, gets its parent-death signal) and reap the workers."""
    for process in processes:
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)  # its own group: it was started in a new session
            except ProcessLookupError:
                pass
    for process in processes:
        process.wait()


def _wait_all(processes: list[Process], timeout: float) -> bool:
    """Wait up to ``timeout`` seconds in all for every process to end; True if they did."""
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return False
    return True


@contextmanager
def local_workers(settings: Settings, count: int, env: Mapping[str, str], log_path: Path,
                  worker_class: str | None = None, stop_timeout: float = 30.0,
                  queues: Sequence[str] = (), say: Say = lambda words: None) -> Iterator[list[Process]]:
    """Run ``count`` workers on ``queues`` for the duration of the block, their output appended to ``log_path``;
    a stop that waits for them says so through ``say``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        processes = [start_worker(settings, i, env, log, worker_class, queues) for i in range(count)]
        try:
            yield processes
        finally:
            stop_workers(processes, stop_timeout, say)


class PoolStop:
    """How ``ingest workers`` stops: the first SIGTERM or SIGINT asks :func:`supervise` to stop
    (RQ's warm shutdown, up to ``grace`` seconds, said at once through ``say``); a second one
    kills the workers now (their jobs go back to the queue as RQ's abandoned jobs). As in RQ, a
    second signal within a second of the first is taken for the same one delivered twice (a
    process manager signalling both the process and its group)."""

    def __init__(self, grace: float, say: Say, clock: Callable[[], float] = time.monotonic) -> None:
        self.requested = threading.Event()
        self._grace, self._say, self._clock = grace, say, clock
        self._signals: list[float] = []  # when each counted signal came
        self._stopping = False

    def install(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._signals and self._clock() - self._signals[0] < 1.0:
            return
        self._signals.append(self._clock())
        self.requested.set()
        if len(self._signals) == 2:
            self._say("second stop signal: killing the workers now (their jobs go back to the queue)")
            if self._stopping:
                raise StopNow

    def stop(self, processes: list[Process]) -> None:
        """``supervise``'s ``stop``: warm, or at once after a second signal."""
        self._stopping = True
        if len(self._signals) >= 2:
            kill_workers(processes)
            return
        self._say(f"stopping {len(processes)} worker(s): the jobs in hand finish first (up to {self._grace:g}s); "
                  "a second SIGTERM or SIGINT stops them now")
        try:
            stop_workers(processes, self._grace, self._say)
        except StopNow:
            kill_workers(processes)


@dataclass
class RespawnBackoff:
    """When to start a worker again after it exited: at once the first time, then after
    doubling delays (``initial``, 2x, 4x, ... up to ``cap`` seconds) while it keeps dying
    soon after its start; a worker that ran ``healthy_after`` seconds starts the count again."""

    initial: float = 1.0
    cap: float = 60.0
    healthy_after: float = 60.0
    _failures: int = field(default=0, init=False)

    def delay(self, ran_for: float) -> float:
        """Seconds to wait before the next start of a worker that ran ``ran_for`` seconds."""
        if ran_for >= self.healthy_after:
            self._failures = 0
        self._failures += 1
        return 0.0 if self._failures == 1 else min(self.cap, self.initial * 2 ** (self._failures - 2))


@dataclass
class _Slot:
    process: Process
    started: float
    backoff: RespawnBackoff
    restart_at: float | None = None  # when a dead worker's replacement is due


def supervise(start: Callable[[], Process], count: int, should_stop: Callable[[float], bool],
              clock: Callable[[], float], stop: Callable[[list[Process]], None],
              on_exit: Callable[[int | None, float], None] = lambda status, delay: None,
              backoff: Callable[[], RespawnBackoff] = RespawnBackoff,
              can_start: Callable[[], bool] = lambda: True) -> None:
    """Keep ``count`` workers running until ``should_stop(seconds)`` (a wait) says so, then
    ``stop`` them; a worker that exits is started again after its slot's
    :class:`RespawnBackoff` delay, once ``can_start()`` (e.g. Redis answers: a worker started
    into a dead Redis only dies again; an exception from it stops the pool)."""
    slots: list[_Slot] = []
    try:
        slots.extend(_Slot(start(), clock(), backoff()) for _ in range(count))
        while not should_stop(1.0):
            now = clock()
            for slot in slots:
                if slot.restart_at is None and slot.process.poll() is not None:
                    delay = slot.backoff.delay(now - slot.started)
                    on_exit(slot.process.returncode, delay)
                    slot.restart_at = now + delay
                if slot.restart_at is not None and now >= slot.restart_at and can_start():
                    slot.process, slot.started, slot.restart_at = start(), now, None
    finally:
        stop([slot.process for slot in slots])
