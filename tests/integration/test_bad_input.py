"""Every kind of bad input, served by an HTTP source and run through the real pipeline
(fetch -> stages -> dedup -> PostgreSQL): each record is loaded, normalised or rejected
with a specific reason, each unreadable page is rejected with its reason, and the
good records around them still load."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import psycopg2.extensions
import pytest
import redis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from ingest_workers import pipeline
from ingest_workers.core.config import Settings
from ingest_workers.core.models import Lineage, Record, Rejected, SourceSpec
from ingest_workers.datasets import PRODUCTS
from ingest_workers.load.loader import PostgresLoader
from ingest_workers.runtime.resources import Resources
from ingest_workers.stages.base import compose, default_stages

pytestmark = pytest.mark.integration
PAGE_SIZE = 10
CAP = 3 * 1024 * 1024


def good(i: int, **change: object) -> dict[str, object]:
    return {"id": f"P{i}", "title": f"Product {i}", "price": 9.5, "in_stock": True, **change}


def json_page(records: list[object] | str) -> tuple[str, bytes]:
    text = records if isinstance(records, str) else json.dumps({"items": records}, allow_nan=True)
    return "application/json", text.encode("utf-8", "surrogatepass")


nested = good(9, extra=json.loads("[" * 300 + "]" * 300))  # 300 levels deep

PAGES = {
    1: json_page([
        good(0),
        good(1, in_stock="yes"),  # wrong type
        {"id": "P2", "price": 3},  # a required field missing
        good(3, price=float("nan")),  # NaN (Python's json accepts the literal)
        good(4, price=-1),  # negative price
        good(5, title="x" * 1_000_000),  # a huge string
        good(6, title="nul \x00 inside"),  # NUL: PostgreSQL text cannot hold it
        good(7, title="lone \ud800 surrogate"),  # invalid Unicode from a \\ud800 escape
        good(8, title="x'); DROP TABLE products; --"),  # SQL-looking: just data
        nested,  # deeply nested payload: loads, kept for audit
    ]),
    2: ("application/json", b'{"items": [{"id": "P20", "title": "cut'),  # not JSON
    3: ("application/json", b'{"items": ["' + b"x" * (CAP + 10) + b'"]}'),  # over the size cap
    4: ("application/json", json.dumps({"items": [good(i) for i in range(40, 49)]})[:-2].encode()
        + b', {"id": "P49", "title": "bad \xff byte", "price": 1}]}'),  # invalid UTF-8 byte
    5: ("text/html", b"<html>502 Bad Gateway</html>"),  # wrong content type
    6: json_page([good(60, price=float("inf")), good(61), good(62, price="$1,299.00")]),  # short page: the end
}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        page = int(parse_qs(urlsplit(self.path).query)["page"][0])
        content_type, body = PAGES.get(page, json_page([]))
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # the client hangs up on the oversized page on purpose


@pytest.fixture(scope="module")
def bad_source() -> Iterator[str]:
    server = _QuietServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/products"
    server.shutdown()
    server.server_close()


def test_each_bad_input_is_loaded_normalised_or_rejected_with_its_reason(
        bad_source: str, redis_client: redis.Redis, pg: psycopg2.extensions.connection, settings: Settings) -> None:
    settings = dataclasses.replace(settings, http_max_body_bytes=CAP, http_max_attempts=2)
    spec = SourceSpec(name="bad_shop", kind="http_json", dataset="products", url=bad_source, page_size=PAGE_SIZE,
                      fields={"product_id": "id", "name": "title"}, rate_limit=0)
    res = Resources(settings, {})
    try:
        counts = pipeline.run_fetch_job(spec, "run-1", "run-1-bad_shop", "inline", res)
    finally:
        res.close()

    with pg, pg.cursor() as cur:
        cur.execute("SELECT product_id, name, price FROM products ORDER BY product_id")
        loaded = {pid: (name, str(price)) for pid, name, price in cur.fetchall()}
        cur.execute("SELECT stage, reason, payload FROM rejected_records ORDER BY reason")
        rejected = [(stage, reason, payload) for stage, reason, payload in cur.fetchall()]
    reasons = sorted(reason for _, reason, _ in rejected)

    assert set(loaded) == {"P0", "P8", "P9", *(f"P{i}" for i in range(40, 50)), "P61", "P62"}
    assert loaded["P8"][0] == "x'); DROP TABLE products; --"
    assert loaded["P49"][0] == "bad \ufffd byte"  # invalid UTF-8 normalised
    assert loaded["P62"][1] == "1299.00"
    assert reasons == sorted([
        "in_stock: expected true or false, got 'yes'",
        "name: required value missing",
        "price: not a finite number",
        "price: -1 is below the minimum 0",
        "name: 1000000 characters is above the maximum length 1000",
        "name: contains a NUL character",
        "name: not valid Unicode (a lone surrogate)",
        "page 2: the body is not JSON",
        f"page 3: response over the size cap ({CAP} bytes)",
        "page 5: content type 'text/html' is not JSON",
        "price: not a finite number",
    ])
    pages = [payload for stage, _, payload in rejected if stage == "fetch"]
    assert sorted(p["page"] for p in pages) == [2, 3, 5]
    assert counts.fetched == counts.loaded + counts.rejected + counts.duplicate + counts.updated
    assert (counts.loaded, counts.rejected) == (len(loaded), len(rejected))


nasty_text = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", " ", "\x00", "a\x00b", "\ud800", "x'); DROP TABLE products; --", "NULL", "\\N",
                     "\t\n\r", '{"a":1}', "$1,299.00", "12,50 EUR", "NaN", "-Infinity", "x" * 5000]),
)
nasty_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | nasty_text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(nasty_text, children, max_size=3),
    max_leaves=10,
)
nasty_products = st.fixed_dictionaries(
    {"id": st.integers(0, 10**6).map(str) | nasty_text},
    optional={"title": nasty_values, "price": nasty_values, "currency": nasty_values, "category": nasty_values,
              "in_stock": nasty_values, "updated_at": nasty_values, "extra": nasty_values},
)


@hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(nasty_products | nasty_values, max_size=8))
def test_any_payload_through_stages_and_postgres_is_loaded_or_rejected(
        pg: psycopg2.extensions.connection, raw: list[object]) -> None:
    """The record path with the real loader: nothing raises, every record is accounted for."""
    with pg, pg.cursor() as cur:
        cur.execute("TRUNCATE products, rejected_records")
    lineage = Lineage("prop", "run-1", "job-1", "2026-01-01T00:00:00+00:00")
    items = list(compose(default_stages({"product_id": "id", "name": "title"}, PRODUCTS, lineage),
                         (Record(r) for r in raw)))
    rows = [item.row for item in items if isinstance(item, Record)]
    rejected = [item for item in items if isinstance(item, Rejected)]
    result = PostgresLoader(pg).load_batch(PRODUCTS, rows, rejected, lineage)
    inserted, refused = result.inserted, result.refused
    assert len(items) == len(raw)
    assert inserted + len(refused) + result.unchanged == len(rows)  # every row counted once
    assert all(item.reason for item in (*rejected, *refused))
    refused_payloads = {id(item.raw) for item in refused}
    kept_keys = {row["product_id"] for row in rows if id(row["raw"]) not in refused_payloads}
    assert inserted == len(kept_keys)  # a key twice in the batch is inserted once
    with pg, pg.cursor() as cur:
        cur.execute("SELECT count(*) FROM products")
        assert cur.fetchone()[0] == inserted
        cur.execute("SELECT count(*) FROM rejected_records WHERE reason = ''")
        assert cur.fetchone()[0] == 0
