"""Ride out a PostgreSQL outage: run one unit of work (a batch's transaction, a job
history write) on a fresh connection, backing off, for a bounded time.

A lost connection surfaces as :class:`TransientError` (mid-transaction) or
:class:`ServiceUnavailable` (reconnecting); the unit is retried from scratch,
which is safe because each unit is one transaction and loads are idempotent
(``ON CONFLICT DO NOTHING``). When the outage outlasts ``budget`` seconds the last
error is raised, and the job is retried by RQ later. Nothing reaches Redis's
"seen" sets before its unit committed, so waiting here never loses a record.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import psycopg2.extensions
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_delay, wait_exponential, wait_random

from ..core.errors import ServiceUnavailable, TransientError

T = TypeVar("T")
Connection = psycopg2.extensions.connection


class PostgresRetry:
    def __init__(self, connect: Callable[[], Connection], discard: Callable[[], None], budget: float,
                 on_retry: Callable[[BaseException, float], None] = lambda error, delay: None) -> None:
        self._connect = connect  # the current connection, a new one if the last was discarded
        self._discard = discard  # drop the current connection (it may be half-dead)
        self._budget = budget
        self._on_retry = on_retry

    def run(self, work: Callable[[Connection], T]) -> T:
        retrying = Retrying(
            retry=retry_if_exception_type((TransientError, ServiceUnavailable)),
            stop=stop_after_delay(self._budget),
            wait=wait_exponential(multiplier=0.25, max=5) + wait_random(0, 0.25),
            before_sleep=self._before_sleep,
            reraise=True,
        )
        return retrying(lambda: work(self._connect()))

    def _before_sleep(self, state: RetryCallState) -> None:
        self._discard()
        error = state.outcome.exception() if state.outcome else None
        if error is not None:
            self._on_retry(error, state.upcoming_sleep)
