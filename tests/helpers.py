"""Small helpers shared by the tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg2.extensions
import requests

from ingest_workers.config import Settings
from ingest_workers.workerpool import worker_env


def scalar(conn: psycopg2.extensions.connection, query: str, *params: object) -> int:
    """The single number ``query`` returns."""
    with conn, conn.cursor() as cur:
        cur.execute(query, params)
        return int(cur.fetchone()[0])


def write_catalog(path: Path, url: str, name: str = "shop_products", extra: str = "") -> Path:
    """A catalog with one products source at ``url`` (the mock's /products)."""
    path.write_text(f"""
[sources.{name}]
kind = "http_json"
domain = "products"
url = "{url}"
page_size = 100
fields = {{ product_id = "id", name = "title" }}
{extra}
""", encoding="utf-8")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def metrics_server(settings: Settings, *args: str) -> Iterator[str]:
    """A real `ingest [ARGS] metrics-server` on a free port; yields its base URL once it answers."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "ingest_workers", *args, "metrics-server", "--port", str(port)],
                               env=worker_env(settings, os.environ), stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(f"{url}/metrics") or process.poll() is not None, timeout=20)
        assert process.poll() is None, "ingest metrics-server exited"
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def wait_until(condition: Callable[[], object], timeout: float, poll: float = 0.1) -> None:
    """Poll ``condition`` until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"condition not met within {timeout}s"
        time.sleep(poll)


def _answers(url: str) -> bool:
    try:
        requests.get(url, timeout=1)
    except requests.ConnectionError:
        return False
    return True
