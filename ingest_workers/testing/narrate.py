"""Tell what a run's workers are going through, in plain words, as it happens (the resilience demo).

Three things are watched, none of which the workers have to know about:

- the workers' log (``--log-format json``: one object per line with ``source``): retries
  with their back-off, jobs failing, deferred while a circuit is open, finishing;
- each source's circuit breaker in Redis: opening, the half-open probe, closing;
- the requests a (mock) source received per second, against its configured limit.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import redis

_RETRY = re.compile(r"source (?P<source>\w+): GET \S+: (?P<error>.+); retrying in (?P<delay>[\d.]+)s$")
_DEFERRED = re.compile(r"job \S+: source (?P<source>\w+): circuit (?P<state>\w+); next try in (?P<delay>[\d.]+)s")
_FAILED = re.compile(r"job \S+: source (?P<source>\w+) failed after \{.*?\}: (?P<error>.+)$")
_DONE = re.compile(r"job \S+: source (?P<source>\w+) done: (?P<counts>\{.*\})$")


class LogTail:
    """The complete lines appended to a file since the last call."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._offset = path.stat().st_size if path.exists() else 0
        self._partial = b""

    def new_lines(self) -> list[str]:
        if not self._path.exists():
            return []
        with self._path.open("rb") as log:
            log.seek(self._offset)
            data = log.read()
        self._offset += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        return [line.decode("utf-8", "replace") for line in lines]


def describe_log_line(line: str) -> str | None:
    """Plain words for a worker's JSON log line that tells something a newcomer should see; else None."""
    try:
        entry = json.loads(line)
    except ValueError:
        return None  # RQ's own lines are text
    if not isinstance(entry, dict):
        return None
    message = str(entry.get("message", ""))
    if match := _RETRY.search(message):
        return _retry_words(match["source"], match["error"], float(match["delay"]))
    if match := _DEFERRED.search(message):
        return (f"{match['source']}: circuit {match['state'].replace('_', '-')}, so the job does not call the "
                f"source; it steps aside and comes back in {float(match['delay']):.0f}s (the workers carry on "
                "with other sources)")
    if match := _FAILED.search(message):
        return f"{match['source']}: this attempt of the job failed ({match['error']})"
    if match := _DONE.search(message):
        counts = json.loads(match["counts"].replace("'", '"'))
        updated = f", {counts['updated']} updated" if counts.get("updated") else ""
        return (f"{match['source']}: finished: {counts['loaded']} loaded{updated}, {counts['rejected']} rejected, "
                f"{counts['duplicate']} already there")
    return None


def _retry_words(source: str, error: str, delay: float) -> str:
    if "HTTP 429" in error:
        return f"{source}: the source says 'too many requests' (429); waiting {delay:.1f}s as it asks, then again"
    if status := re.search(r"HTTP (5\d\d)", error):
        return (f"{source}: the source answered {status[1]} (a server error); trying again in {delay:.1f}s "
                "(each wait longer than the last)")
    for cause, words in _CAUSES.items():
        if cause in error:
            return f"{source}: {words}; trying again in {delay:.1f}s"
    return f"{source}: {error}; trying again in {delay:.1f}s"


_CAUSES = {"ChunkedEncodingError": "the connection broke in the middle of a page",
           "ConnectionError": "the connection broke", "Timeout": "no answer in time",
           "not JSON": "the page came back cut short (not valid JSON)"}


BREAKER_WORDS = {
    "open": "{source}: {failures} failures in a row: its circuit breaker OPENS; no worker calls {source} "
            "for a while, its job is deferred instead",
    "half_open": "{source}: the cool-down is over: circuit half-open, ONE probe request is let through",
    "closed": "{source}: the probe succeeded: circuit closed, {source} is called again",
}


class BreakerWatch:
    """Each source's breaker state in Redis, reported when it changes."""

    def __init__(self, client: redis.Redis, sources: Iterable[str], prefix: str) -> None:
        self._client = client
        self._keys = {source: prefix + source for source in sources}
        self._last: dict[str, tuple[str, bytes | None]] = {source: ("closed", None) for source in self._keys}
        self.reopened: set[str] = set()  # sources whose probe failed at least once

    def changes(self) -> list[str]:
        lines = []
        pipe = self._client.pipeline(transaction=False)
        for key in self._keys.values():
            pipe.hmget(key, "state", "failures", "until")
        for source, (state, failures, until) in zip(self._keys, pipe.execute()):
            state = (state or b"closed").decode()
            last_state, last_until = self._last[source]
            if state == "open" and last_state != "closed" and until != last_until:
                # Re-opened, whether or not a poll saw the short half-open moment in between.
                lines.append(f"{source}: the probe failed: the circuit opens again, for another cool-down")
                self.reopened.add(source)
            elif state != last_state:
                lines.append(BREAKER_WORDS[state].format(source=source, failures=int(failures or 0)))
            self._last[source] = (state, until)
        return lines


class RateWatch:
    """Requests a source received per second over the last ``window`` seconds, against its limit."""

    def __init__(self, stamps: Mapping[str, Callable[[], list[float]]], limits: Mapping[str, float],
                 clock: Callable[[], float], window: float = 5.0) -> None:
        self._stamps = stamps  # source -> the monotonic times its server saw requests
        self._limits = limits
        self._clock = clock
        self._window = window
        self._next = clock() + window

    def report(self) -> list[str]:
        now = self._clock()
        if now < self._next:
            return []
        self._next = now + self._window
        lines = []
        for source, stamps in self._stamps.items():
            recent = [t for t in stamps() if t > now - self._window]
            if recent:
                lines.append(f"{source}: {len(recent) / self._window:.1f} requests/s in the last "
                             f"{self._window:.0f}s (its limit: {self._limits[source]:g}/s, for all workers together)")
        return lines
