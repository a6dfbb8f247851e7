"""Small helpers shared by the tests."""

from __future__ import annotations

import base64
import binascii
import os
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import psycopg2.extensions
import redis
import requests

from ingest_workers.core.config import Settings
from ingest_workers.core.envrefs import expand
from ingest_workers.core.models import SourceSpec
from ingest_workers.runtime.workerpool import worker_env
from ingest_workers.sources.synthetic import SensorPlan, reading
from ingest_workers.testing.devservices import free_port
from ingest_workers.testing.mock_sources import FEEDS, sensors

DATASET_TABLES = {"products": "products", "quotes": "stock_quotes", "mentions": "social_mentions", "posts": "posts",
                 "sensors": "sensor_readings"}
# The default catalog's sources: (dataset, mock feed path or None for the synthetic source).
DEFAULT_SOURCES = {
    "shop_products": ("products", "/products"), "shop_b_catalog": ("products", "/v2/catalog"),
    "shop_c_products": ("products", "/shop-c/products"), "market_quotes": ("quotes", "/quotes"),
    "twitter_mentions": ("mentions", "/twitter/tweets"), "telegram_mentions": ("mentions", "/telegram/getUpdates"),
    "placeholder_posts": ("posts", "/posts"), "sensor_csv": ("sensors", "/sensors.csv"),
    "sensor_synthetic": ("sensors", None),
}


def scalar(conn: psycopg2.extensions.connection, query: str, *params: object) -> int:
    """The single number ``query`` returns."""
    with conn, conn.cursor() as cur:
        cur.execute(query, params)
        return int(cur.fetchone()[0])


def values(rows: dict[tuple, tuple[tuple, str]]) -> dict[tuple, tuple]:
    """A table's rows by key without their ``xmin``."""
    return {key: row for key, (row, _) in rows.items()}


def followed(before: dict[tuple, tuple[tuple, str]], after: dict[tuple, tuple[tuple, str]],
             want: dict[tuple, tuple]) -> tuple[set[tuple], set[tuple], set[tuple]]:
    """Check that a table (rows by key: values and ``xmin``) went from ``before`` to exactly ``want``
    row by row: an unchanged row keeps its ``xmin`` (not rewritten), a changed one has a new one.
    Returns the keys new, rewritten and gone."""
    assert values(after) == want
    old = values(before)
    for key, row in want.items():
        if old.get(key) == row:
            assert after[key][1] == before[key][1], f"{key} rewritten unchanged"
        elif key in old:
            assert after[key][1] != before[key][1], f"{key} changed but not rewritten"
    rewritten = {key for key in want if key in old and old[key] != want[key]}
    return set(want) - set(old), rewritten, set(old) - set(want)


def resolved(spec: SourceSpec, env: dict[str, str]) -> SourceSpec:
    """``spec`` with its ``${VAR}`` references expanded from ``env``, as a worker would run it."""
    return SourceSpec.from_dict({key: expand(value, env, spec.name, key) for key, value in spec.to_dict().items()})


def write_catalog(path: Path, url: str, name: str = "shop_products", extra: str = "") -> Path:
    """A catalog with one products source at ``url`` (the mock's /products)."""
    path.write_text(f"""
[sources.{name}]
kind = "http_json"
dataset = "products"
url = "{url}"
page_size = 100
fields = {{ product_id = "id", name = "title" }}
{extra}
""", encoding="utf-8")
    return path




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


def answer(handler: BaseHTTPRequestHandler, status: int, headers: Mapping[str, str], body: bytes) -> None:
    """Send one whole answer from a test server's handler (its length included)."""
    handler.send_response(status)
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@contextmanager
def serving(*servers: HTTPServer) -> Iterator[None]:
    """Run test HTTP servers in threads of their own; stop and close them at the end."""
    for server in servers:
        # Polled every 50 ms, not 0.5 s: shutdown() waits for the poll, and every test stops its servers.
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


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


# What the demo catalog's stages refuse of the first N records of each feed, listed here by the
# tests (not asked of the mock): every 97th record is broken on purpose (N // 97), and beyond that
# market_quotes has a ticker that always quotes 0 (one in 24 quotes, then broken ones), sensor_csv
# and sensor_synthetic readings outside their kind's range. The 20,000 row is the demo table of the
# README; the mock and these figures must agree, whoever changes one.
REFUSED = {
    1000: {"shop_products": 10},
    2000: {"shop_products": 20, "shop_b_catalog": 20, "shop_c_products": 20, "market_quotes": 103,
           "twitter_mentions": 20, "telegram_mentions": 20, "placeholder_posts": 20, "sensor_csv": 60,
           "sensor_synthetic": 40},
    3000: {"shop_products": 30, "shop_b_catalog": 30, "shop_c_products": 30, "market_quotes": 154,
           "twitter_mentions": 30, "telegram_mentions": 30, "placeholder_posts": 30, "sensor_csv": 90,
           "sensor_synthetic": 60},
    20000: {"shop_products": 206, "shop_b_catalog": 206, "shop_c_products": 206, "market_quotes": 1031,
            "twitter_mentions": 206, "telegram_mentions": 206, "placeholder_posts": 206, "sensor_csv": 602,
            "sensor_synthetic": 400},
}


def expected_refused(source: str, records: int) -> int:
    """How many of the first ``records`` a default-catalog source serves its stages refuse (:data:`REFUSED`)."""
    return REFUSED[records][source]


def broken_products(records: int) -> int:
    """How many of shop A's first ``records`` products the mock breaks: every 97th (the fixture's rule)."""
    return records // 97


def served_record(source: str, index: int) -> dict[str, Any]:
    """Record ``index`` as a default-catalog source receives it (CSV rows as text)."""
    path = DEFAULT_SOURCES[source][1]
    if path is None:
        return reading(SensorPlan(records=index + 1, seed=42, sensors=6), index)
    if path == "/sensors.csv":
        return {k: str(v) for k, v in sensors.csv_reading(index).items()}
    return FEEDS[path].record(index, 97)


@dataclass(frozen=True)
class PrivateRedis:
    """A redis-server of a test's own: the default user's password, an ACL user, a TLS port."""

    port: int
    tls_port: int
    password: str  # the default user's (requirepass)
    user: str
    user_password: str
    ca_file: Path

    def url(self, db: int = 0) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/{db}"

    def user_url(self, db: int = 0) -> str:
        return f"redis://{self.user}:{self.user_password}@127.0.0.1:{self.port}/{db}"

    def tls_user_url(self, db: int = 0) -> str:
        """TLS to the ACL user, the server's certificate checked against the test's CA (redis-py's
        URL parameters, passed through as they are)."""
        return (f"rediss://{self.user}:{self.user_password}@127.0.0.1:{self.tls_port}/{db}"
                f"?ssl_cert_reqs=required&ssl_ca_certs={self.ca_file}")


@contextmanager
def private_redis(workdir: Path, password: str, user: str, user_password: str) -> Iterator[PrivateRedis]:
    """``redis-server`` on free ports with ``requirepass``, an ACL user with every right, and TLS (a
    self-signed certificate made with openssl). Its configuration, passwords included, goes in on
    stdin (``redis-server -``): never in its arguments, which every local user can read."""
    workdir.mkdir(parents=True, exist_ok=True)
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    server = PrivateRedis(free_port(), free_port(), password, user, user_password, cert)
    config = f"""bind 127.0.0.1
port {server.port}
tls-port {server.tls_port}
tls-cert-file {cert}
tls-key-file {key}
tls-ca-cert-file {cert}
tls-auth-clients no
save ""
appendonly no
dir {workdir}
requirepass {password}
user {user} on >{user_password} ~* &* +@all
"""
    with (workdir / "redis.log").open("ab") as log:
        process = subprocess.Popen(["redis-server", "-"], stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT)
    assert process.stdin is not None
    process.stdin.write(config.encode())
    process.stdin.close()
    try:
        client = redis.Redis.from_url(server.url())
        wait_until(lambda: _pings(client) or process.poll() is not None, timeout=20)
        assert process.poll() is None, (workdir / "redis.log").read_text()
        client.close()
        yield server
    finally:
        process.terminate()
        process.wait(timeout=10)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def redis_contents(client: redis.Redis) -> bytes:
    """Every key and value of every database of ``client``'s server, of every type, as one text."""
    parts: list[bytes] = []
    for db in range(int(client.config_get("databases")["databases"])):
        conn = redis.Redis(connection_pool=redis.ConnectionPool(**{**client.connection_pool.connection_kwargs,
                                                                   "db": db}))
        for key in conn.scan_iter(count=1000):
            parts += [key, *map(_readable, _flat(_value(conn, key)))]
        conn.close()
    return b"\n".join(parts)


def _flat(value: Any) -> Iterator[bytes]:
    if isinstance(value, bytes):
        yield value
    elif isinstance(value, dict):
        for pair in value.items():
            yield from _flat(pair)
    elif isinstance(value, (list, tuple, set)):
        for item in value:
            yield from _flat(item)
    else:
        yield repr(value).encode()


def _readable(value: bytes) -> bytes:
    """``value`` and what RQ makes of text before storing it: a job's data and exc_info are
    zlib-compressed, a result's exc_string is base64 of that."""
    forms = [value]
    for decode in (lambda v: zlib.decompress(v), lambda v: zlib.decompress(base64.b64decode(v, validate=True))):
        try:
            forms.append(decode(value))
        except (zlib.error, binascii.Error, ValueError):
            pass
    return b" ".join(forms)


def _value(conn: redis.Redis, key: bytes) -> Any:
    kind = conn.type(key).decode()
    if kind == "string":
        return conn.get(key)
    if kind == "hash":
        return conn.hgetall(key)
    if kind == "list":
        return conn.lrange(key, 0, -1)
    if kind == "set":
        return conn.smembers(key)
    if kind == "zset":
        return conn.zrange(key, 0, -1, withscores=True)
    if kind == "stream":
        return conn.xrange(key)
    raise AssertionError(f"key {key!r} of an unknown type {kind}")
