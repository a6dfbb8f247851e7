"""Your own API by configuration alone: the fixture API (HAL-style customers with a relative
next link, Stripe-style invoices with has_more, nested objects and arrays, bearer and basic
auth) declared as datasets in a catalog file only, loaded by real `rq worker` processes
(`ingest run --workers 2`), then a second revision merged row by row (changed rows
rewritten, unchanged ones untouched: same ``xmin``), and a third identical run changing
nothing. Every expected row is computed here from the fixture's own record functions.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg2.extensions
import pytest
import redis
from click.testing import CliRunner

from ingest_workers.cli import main
from ingest_workers.testing.devservices import Services
from tests.fixture_api import PASSWORD, TOKEN, USER, FixtureApi, FixtureData, customer, invoice

pytestmark = pytest.mark.integration

ENV = {"CRM_TOKEN": TOKEN, "BILLING_USER": USER, "BILLING_PASSWORD": PASSWORD, "INGEST_JOB_RETRIES": "0"}
TABLES = ("crm_customers", "billing_invoices")

CATALOG = """
[settings]
batch_size = 20                       # several batches, several transactions per job

[datasets.crm_customers]
key = ["customer_id"]
write = "merge"
version_column = "updated_at"         # a record replaces the stored row only when newer
indexes = [["email"], ["country", "updated_at"]]
[datasets.crm_customers.columns]
customer_id = "text"
email = {{ type = "text", required = true, max_length = 320 }}
plan = {{ type = "text", one_of = ["free", "pro", "team"] }}
age = {{ type = "integer", min = 0, max = 150 }}
city = "text"
country = "text"
address = "json"
tags = "text[]"
updated_at = "timestamp"

[sources.crm_customers]
kind = "http_json"
dataset = "crm_customers"
url = "{api}/api/customers"
records_path = "_embedded.customers"
pagination = "next_url"
next_url_path = "_links.next.href"    # relative: "customers?page=2&size=10"
page_size_param = "size"
page_size = 10
auth = {{ kind = "bearer", token_env = "CRM_TOKEN" }}
headers = {{ Accept = "application/hal+json" }}
fields = {{ city = "address.city", country = "address.country", updated_at = "updated" }}

[datasets.billing_invoices]
key = ["invoice_id"]
write = "merge"                       # no version: a record whose values differ replaces the row
[datasets.billing_invoices.columns]
invoice_id = "text"
customer_id = "text"
amount_due = {{ type = "integer", min = 0 }}
currency = "text"
status = {{ type = "text", one_of = ["open", "paid"] }}
lines = "json"
first_line_amount = "integer"
order_ref = "text"
created_at = "timestamp"

[sources.billing_invoices]
kind = "http_json"
dataset = "billing_invoices"
url = "{api}/v1/invoices"
records_path = "data"
pagination = "after_last"             # starting_after = the last record's id, while has_more
page_size_param = "limit"
page_size = 10
params = {{ expand = "lines" }}
auth = {{ kind = "basic", username_env = "BILLING_USER", password_env = "BILLING_PASSWORD" }}
[sources.billing_invoices.fields]
invoice_id = "id"
customer_id = "customer"
lines = "lines.data"
first_line_amount = "lines.data.0.amount"
order_ref = "metadata.order"
created_at = "created"
"""


def iso(value: Any) -> str:
    """A timestamp as the tests compare them: UTC ISO 8601."""
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, UTC).isoformat()
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return datetime.fromisoformat(value).astimezone(UTC).isoformat()


def expected_customers(data: FixtureData) -> dict[str, tuple]:
    rows = {}
    for i in range(data.customers):
        c = customer(i, data.revision)
        rows[c["customer_id"]] = (c["email"], c["plan"], c["age"], c["address"]["city"], c["address"]["country"],
                                  c["address"], c["tags"] or None, iso(c["updated"]))
    return rows


def expected_invoices(data: FixtureData) -> dict[str, tuple]:
    rows = {}
    for i in range(data.invoices):
        v = invoice(i, data.revision)
        rows[v["id"]] = (v["customer"], v["amount_due"], v["currency"], v["status"], v["lines"]["data"],
                         v["lines"]["data"][0]["amount"], v["metadata"]["order"], iso(v["created"]))
    return rows


def stored(pg: psycopg2.extensions.connection) -> dict[str, dict[str, tuple[tuple, str]]]:
    """Each table's rows by key: the values, and the row's xmin (which changes when it is rewritten)."""
    queries = {
        "crm_customers": "SELECT customer_id, email, plan, age, city, country, address, tags, updated_at, xmin::text "
                         "FROM crm_customers WHERE source = 'crm_customers'",
        "billing_invoices": "SELECT invoice_id, customer_id, amount_due, currency, status, lines, first_line_amount, "
                            "order_ref, created_at, xmin::text FROM billing_invoices WHERE source = 'billing_invoices'",
    }
    out: dict[str, dict[str, tuple[tuple, str]]] = {}
    with pg, pg.cursor() as cur:
        for table, query in queries.items():
            cur.execute(query)
            out[table] = {}
            for key, *values, xmin in cur.fetchall():
                values[-1] = iso(values[-1])
                out[table][key] = (tuple(values), xmin)
    return out


def values(rows: dict[str, tuple[tuple, str]]) -> dict[str, tuple]:
    return {key: row for key, (row, _) in rows.items()}


def ingest(services: Services, catalog: Path, tmp_path: Path, *args: str) -> dict[str, dict[str, int]]:
    flags = ["--redis-url", services.redis_url, "--database-url", services.database_url, "--log-level", "WARNING",
             "--catalog", str(catalog)]
    out = tmp_path / "summary.json"
    out.unlink(missing_ok=True)
    result = CliRunner().invoke(main, [*flags, *args, *(["--out", str(out)] if args[0] == "run" else [])], env=ENV)
    assert result.exit_code == 0, result.output
    if args[0] != "run":
        return {}
    return json.loads(out.read_text())["sources"]


@pytest.fixture
def api() -> Any:
    server = FixtureApi().start()
    yield server
    server.stop()


@pytest.fixture
def clean(services: Services, redis_client: redis.Redis, pg: psycopg2.extensions.connection) -> Any:
    with pg, pg.cursor() as cur:
        for table in TABLES:
            cur.execute(f"DROP TABLE IF EXISTS {table}")
    yield
    with pg, pg.cursor() as cur:
        for table in TABLES:
            cur.execute(f"DROP TABLE IF EXISTS {table}")


def test_your_own_api_loads_merges_and_stays_put(services: Services, redis_client: redis.Redis,
                                                 pg: psycopg2.extensions.connection, api: FixtureApi,
                                                 clean: None, tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(CATALOG.format(api=api.url))
    ingest(services, catalog, tmp_path, "db", "migrate")

    # Revision 1: everything is new.
    summary = ingest(services, catalog, tmp_path, "run", "--sources", "all", "--workers", "2", "--timeout", "120")
    data = api.data
    assert _counts(summary["crm_customers"]) == (data.customers, 0, 0, data.customers, 0)
    assert _counts(summary["billing_invoices"]) == (data.invoices, 0, 0, data.invoices, 0)
    first = stored(pg)
    assert values(first["crm_customers"]) == expected_customers(data)
    assert values(first["billing_invoices"]) == expected_invoices(data)
    requests = [path for path, _ in data.requests]
    assert "/api/customers?page=2&size=10" in requests  # the relative HAL link was followed
    assert "/v1/invoices?expand=lines&limit=10&starting_after=in_000009" in requests

    # Revision 2: some records changed, two customers are new; the rest is served unchanged.
    data.revision, data.customers = 2, data.customers + 2
    summary = ingest(services, catalog, tmp_path, "run", "--sources", "all", "--workers", "2", "--timeout", "120")
    second = stored(pg)
    for table, expected in (("crm_customers", expected_customers(data)),
                            ("billing_invoices", expected_invoices(data))):
        assert values(second[table]) == expected, table
        before = values(first[table])
        changed = {k for k in expected if k in before and before[k] != expected[k]}
        unchanged = {k for k in expected if k in before and before[k] == expected[k]}
        assert changed and unchanged
        for key in unchanged:
            assert second[table][key][1] == first[table][key][1], f"{table} {key} was rewritten unchanged"
        for key in changed:
            assert second[table][key][1] != first[table][key][1], f"{table} {key} was not rewritten"
        new = set(expected) - set(before)
        counts = summary[table]
        assert (counts["updated"], counts["loaded"]) == (len(changed), len(new)), table
        assert counts["fetched"] == counts["rejected"] + counts["duplicate"] + counts["loaded"] + counts["updated"]
        assert counts["duplicate"] == len(unchanged) and counts["rejected"] == 0

    # Revision 2 again: nothing changes, not even a row's xmin.
    summary = ingest(services, catalog, tmp_path, "run", "--sources", "all", "--workers", "2", "--timeout", "120")
    assert stored(pg) == second
    for table in TABLES:
        assert (summary[table]["loaded"], summary[table]["updated"]) == (0, 0)

    # The secrets went nowhere near Redis: the jobs carry only the variables' names.
    for key in redis_client.scan_iter():
        kind = redis_client.type(key)
        blob = repr(redis_client.hgetall(key) if kind == b"hash" else redis_client.get(key) if kind == b"string"
                    else b"")
        assert TOKEN not in blob and PASSWORD not in blob, key


def _counts(summary: dict[str, int]) -> tuple[int, ...]:
    return tuple(summary[k] for k in ("fetched", "rejected", "duplicate", "loaded", "updated"))
