"""A fleet of local ``rq worker`` processes that the chaos run and the tests kill and
replace. Processes are found through Linux's /proc and signalled by pid, never by name."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux /proc)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += map(int, (task / "children").read_text().split())
        except OSError:
            continue
    return found


def work_horses(worker_pid: int) -> list[int]:
    """The work horse(s) of a forking ``rq worker``: children that lead their own process group
    (RQ calls ``setpgrp`` in the horse; its scheduler child stays in the worker's group)."""
    return [pid for pid in children(worker_pid) if _pgid(pid) == pid]


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def kill(pids: list[int], sig: int = signal.SIGKILL) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


class WorkerFleet:
    """``rq worker`` processes a test starts, kills and replaces; :meth:`close` ends every
    process it ever started, orphaned schedulers included (their pids are noted while alive)."""

    def __init__(self, command: Callable[[str], list[str]], env: dict[str, str], log_path: Path) -> None:
        self._command = command
        self._env = env
        self._log = log_path.open("ab")
        self._started = 0
        self._prefix = f"fleet-{os.getpid()}-{id(self)}-"
        self.workers: list[subprocess.Popen[bytes]] = []
        self._known: set[int] = set()

    def start(self, count: int = 1) -> None:
        for _ in range(count):
            self._started += 1
            self.workers.append(subprocess.Popen(self._command(f"{self._prefix}{self._started}"),
                                                 env=self._env, stdout=self._log, stderr=subprocess.STDOUT,
                                                 stdin=subprocess.DEVNULL))

    def note_children(self) -> None:
        for worker in self.workers:
            self._known.update(children(worker.pid))

    def kill_worker(self, worker: subprocess.Popen[bytes], horse_only: bool = False) -> None:
        """SIGKILL a worker mid-job: its work horse, and unless ``horse_only`` the worker itself."""
        self.note_children()
        kill(work_horses(worker.pid))
        if not horse_only:
            kill([worker.pid])
            worker.wait()
            self.workers.remove(worker)

    def close(self) -> None:
        self.note_children()
        for worker in self.workers:
            worker.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for worker in self.workers:
            try:
                worker.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                kill([worker.pid])
                worker.wait()
        # A pid may have been reused since it was noted: only kill processes still ours by name.
        kill([pid for pid in sorted(self._known) if self._prefix in _command_line(pid)])
        self._log.close()


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
