"""Plugins as a user would write them: one class each, named in the catalog by dotted path."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ingest_workers.core.errors import TransientError
from ingest_workers.core.models import Record


class CountingSource:
    """A source kind: posts ``since``..options.count (ids from 1); with option ``fail_after``
    it fails like a dropped connection after serving that many."""

    def __init__(self, spec: Any, context: Any) -> None:
        self.count = int(spec.options.get("count", 3))
        self.fail_after = spec.options.get("fail_after")
        self.first = int(context.since or 1)

    def stream(self) -> Iterator[dict[str, Any]]:
        for served, i in enumerate(range(self.first, self.count + 1)):
            if self.fail_after is not None and served == self.fail_after:
                raise TransientError("connection dropped")
            yield {"id": i, "userId": 1, "title": f"post {i}"}


class ShoutTitles:
    """A stage: upper-case the title and add a suffix."""

    name = "shout"

    def __init__(self, suffix: str = "!") -> None:
        self.suffix = suffix

    def process(self, items: Iterable[Any]) -> Iterator[Any]:
        for item in items:
            if isinstance(item, Record):
                item.row["title"] = item.row["title"].upper() + self.suffix
            yield item


class RememberSink:
    """A sink: append each row's key fields as a JSON line to ``path``."""

    def __init__(self, context: Any, path: str = "remembered.jsonl") -> None:
        self.path = Path(path)

    def consume(self, rows: Iterable[dict[str, Any]]) -> None:
        with self.path.open("a", encoding="utf-8") as out:
            for row in rows:
                out.write(json.dumps({"post_id": row["post_id"], "title": row["title"]}) + "\n")


STAGE_CALLS: list[tuple[int, bool]] = []


class NotePid:
    """A stage that notes the process and whether the main thread ran it, where a breakpoint
    would stop."""

    def process(self, items: Iterable[Any]) -> Iterator[Any]:
        STAGE_CALLS.append((os.getpid(), threading.current_thread() is threading.main_thread()))
        yield from items


class SleepingSource:
    """A source kind that waits ``options.seconds`` before serving nothing: a long job to kill."""

    def __init__(self, spec: Any, context: Any) -> None:
        self.seconds = float(spec.options.get("seconds", 30))

    def stream(self) -> Iterator[dict[str, Any]]:
        time.sleep(self.seconds)
        yield from ()


class AbortingSource:
    """A source kind whose process dies at once (``os.abort``), as a job that kills its work horse."""

    def __init__(self, spec: Any, context: Any) -> None:
        pass

    def stream(self) -> Iterator[dict[str, Any]]:
        os.abort()
        yield from ()


class HmacSigner:
    """An authenticator: signs each request's URL and sorted query with HMAC-SHA256 of the key in
    ``key_env`` (header ``X-Signature``), as APIs that take no bearer token ask."""

    def __init__(self, context: Any, key_env: str) -> None:
        self._context, self._variable = context, key_env
        context.secret(key_env, "auth.key_env")

    def authorize(self, request: Any) -> Any:
        key = self._context.secret(self._variable, "auth.key_env").encode()
        return request.adding(headers={"X-Signature": sign(key, request.url, request.params)})


def sign(key: bytes, url: str, params: Any) -> str:
    """What :class:`HmacSigner` sends (and a test server checks): HMAC of the URL and sorted query."""
    message = url + "?" + "&".join(f"{k}={params[k]}" for k in sorted(params))
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


class ScrollPaginator:
    """A paginator: asks for a scroll (``scroll=1m``), then follows ``scroll_id`` from each page's body
    until a page comes back empty (Elasticsearch-style)."""

    def __init__(self, spec: Any) -> None:
        self.keep_alive = str(spec.options.get("keep_alive", "1m"))

    def first_request(self, request: Any) -> Any:
        return request.adding(params={"scroll": self.keep_alive})

    def next_request(self, records: list[Any], response: Any, request: Any) -> Any:
        scroll_id = response.body.get("scroll_id") if isinstance(response.body, dict) else None
        if not records or not scroll_id:
            return None
        return type(request)(request.url, {"scroll": self.keep_alive, "scroll_id": scroll_id}, request.headers)


class LosesRecords:
    """A buggy stage: it drops every ``every``-th record without rejecting it (a planted miscount)."""

    name = "loses_records"

    def __init__(self, every: int = 3) -> None:
        self.every = every

    def process(self, items: Iterable[Any]) -> Iterator[Any]:
        for index, item in enumerate(items, 1):
            if index % self.every:
                yield item
