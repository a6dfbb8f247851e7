"""Processes that die with their parent: nothing a pool or a run starts outlives it.

A pool (``ingest workers``, ``ingest run``) starts ``rq worker`` processes; each forks a
scheduler (``--with-scheduler``) and a work horse per job, and the horse calls ``setpgrp``.
A pool killed with SIGKILL cannot stop them, and a scheduler whose worker was killed ran on
for half an hour holding the scheduler lock.

Why the parent-death signal (``prctl(PR_SET_PDEATHSIG)``) and not process groups plus a
subreaper: the horse leaves its worker's process group (RQ's ``setpgrp``), so one ``killpg``
never reaches every generation, and a subreaper only collects orphans, it does not kill
them, and needs a living reaper, which is what a SIGKILLed pool is not. The signal is
cleared in a forked child (kept across ``exec``), so every generation sets it for itself,
relative to its own parent: the pool's ``preexec_fn`` for ``rq worker``
(:func:`parent_death_hook`, :data:`POOL_DIED`), and an at-fork hook in the worker for the scheduler and the
horse (:func:`children_die_with_this_process`). Linux only; elsewhere these do nothing.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# What ``rq worker`` gets when its pool dies: neither SIGTERM nor SIGINT, which RQ takes for a warm
# shutdown (the job in hand would run on, unsupervised, for up to its timeout). IngestWorker takes
# it for a cold shutdown (see ``runtime.worker``); any other worker class simply dies of it.
POOL_DIED = signal.SIGHUP


def die_with_parent(parent_pid: int, signum: int = signal.SIGTERM) -> None:
    """Ask the kernel to send ``signum`` to this process when its parent dies; exit at once if
    the parent (``parent_pid``) is already gone (it died between the fork and this call)."""
    _on_parent_death(_prctl(), parent_pid, signum)


def parent_death_hook(signum: int = signal.SIGTERM) -> Callable[[], None]:
    """A ``preexec_fn`` for :class:`subprocess.Popen`: the child gets ``signum`` when this
    process (the thread that calls Popen) dies. libc is looked up here, before the fork."""
    parent, prctl = os.getpid(), _prctl()
    return lambda: _on_parent_death(prctl, parent, signum)


def _prctl() -> Callable[..., int] | None:
    return ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None


def _on_parent_death(prctl: Callable[..., int] | None, parent_pid: int, signum: int) -> None:
    if prctl is None:
        return
    # An ignored disposition survives fork and exec (a pool started under nohup ignores SIGHUP):
    # the signal must end this process, or be caught by a handler it installs itself.
    signal.signal(signum, signal.SIG_DFL)
    prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)


def children_die_with_this_process(signum: int = signal.SIGTERM) -> None:
    """Every child this process forks from now on (and each of theirs, in turn) gets ``signum``
    when its parent dies: RQ's scheduler process and work horses die with their worker.

    The child also starts with the default action for SIGTERM, SIGINT and :data:`POOL_DIED` in
    place of its parent's Python handlers, until it installs its own: RQ's worker handler, run
    in a scheduler that has not installed its own yet, acts as if it were the worker (a stop
    request sets the copied worker's flags instead of stopping the scheduler)."""
    forking: list[int] = []  # the pid of the process about to fork, read in the child

    def before() -> None:
        forking[:] = [os.getpid()]

    def in_child() -> None:
        for inherited in (signal.SIGTERM, signal.SIGINT, POOL_DIED):
            if callable(signal.getsignal(inherited)):  # the parent's Python handler; an ignored one stays so
                signal.signal(inherited, signal.SIG_DFL)
        if forking:
            die_with_parent(forking[0], signum)

    os.register_at_fork(before=before, after_in_child=in_child)
