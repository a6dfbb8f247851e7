"""The status page of `ingest metrics-server`, rendered by a real headless Chromium (Debian's
package): every source of a run is there, the unhealthy one is marked so, no planted secret
shows; and /status is the document of `ingest status --json`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import psycopg2.extensions
import pytest
import redis
import requests

from ingest_workers.core.config import Settings
from ingest_workers.testing.devservices import Services
from ingest_workers.testing.mock_sources import MockConfig, MockServer
from tests.helpers import metrics_server

pytestmark = pytest.mark.integration
TOKEN = "planted-token-4d1e7b"
DB_PASSWORD = "planted-dbpass-9a0c3f"
URL_KEY = "planted-urlkey-77b2"


class SourceRows(HTMLParser):
    """Each row of the sources table as the browser left it: its classes and its cells' text."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, dict[str, object]] = {}
        self._row: dict[str, object] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "tr" and values.get("data-source"):
            self._row = {"classes": (values.get("class") or "").split(), "cells": []}
            self.rows[str(values["data-source"])] = self._row
        elif tag == "td" and self._row is not None:
            self._cell = []

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._row is not None and self._cell is not None:
            self._row["cells"].append("".join(self._cell).strip())  # type: ignore[union-attr]
            self._cell = None
        elif tag == "tr":
            self._row = None


def render(url: str, tmp_path: Path) -> str:
    """The DOM of ``url`` after Chromium loaded it (it runs as root here: no sandbox)."""
    binary = shutil.which("chromium")
    assert binary, "chromium is not installed: scripts/test installs Debian's package (apt-get install chromium)"
    done = subprocess.run([binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           f"--user-data-dir={tmp_path / 'chromium'}", "--dump-dom", url],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_status_page_renders_every_source_marks_the_unhealthy_one_and_shows_no_secret(
    services: Services, redis_client: redis.Redis, pg: psycopg2.extensions.connection, settings: Settings,
    mock_server: MockServer, tmp_path: Path,
) -> None:
    mock_server.config = MockConfig(records=300)
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(f"""
[sources.shop_secret]
kind = "http_json"
dataset = "products"
url = "{mock_server.url}/products"
auth_env = "SHOP_TOKEN"
fields = {{ product_id = "id", name = "title" }}

[sources.shop_broken]
kind = "http_json"
dataset = "products"
url = "{mock_server.url}/missing?api_key={URL_KEY}"

[sources.shop_never_run]
kind = "http_json"
dataset = "products"
url = "{mock_server.url}/products"
""", encoding="utf-8")
    database_url = services.database_url.replace("postgres@", f"postgres:{DB_PASSWORD}@")  # trust auth ignores it
    env = {**os.environ, "REDIS_URL": services.redis_url, "DATABASE_URL": database_url, "SHOP_TOKEN": TOKEN,
           "INGEST_QUEUE": settings.queue, "INGEST_JOB_RETRIES": "0"}
    run = subprocess.run([sys.executable, "-m", "ingest_workers", "--catalog", str(catalog), "run", "--sources",
                          "shop_secret,shop_broken", "--workers", "1", "--timeout", "60"],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stdout + run.stderr  # shop_broken fails (404)

    served = Settings(redis_url=services.redis_url, database_url=database_url, queue=settings.queue)
    with metrics_server(served, "--catalog", str(catalog)) as url:
        page = render(f"{url}/", tmp_path)
        answer = requests.get(f"{url}/status", timeout=10)
    status = subprocess.run([sys.executable, "-m", "ingest_workers", "--catalog", str(catalog), "status", "--json"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr

    parser = SourceRows()
    parser.feed(page)
    assert set(parser.rows) == {"shop_secret", "shop_broken", "shop_never_run"}
    assert "unhealthy" in parser.rows["shop_broken"]["classes"]
    assert parser.rows["shop_broken"]["cells"][1] == "unhealthy"
    assert "HTTP 404" in parser.rows["shop_broken"]["cells"][-1]
    assert parser.rows["shop_secret"]["cells"][1] == "healthy"
    assert parser.rows["shop_never_run"]["cells"][1] == "no runs"
    assert 'src="/static/console.js"' in page  # it refreshes itself in place
    for secret in (TOKEN, DB_PASSWORD, URL_KEY):
        assert secret not in page and secret not in answer.text

    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/json"
    served_doc, printed_doc = answer.json(), json.loads(status.stdout)
    served_doc.pop("generated_at"), printed_doc.pop("generated_at")
    assert served_doc == printed_doc


def test_the_status_page_says_what_is_missing_when_the_database_has_no_schema(
    services: Services, empty_database: str, redis_client: redis.Redis, tmp_path: Path,
) -> None:
    served = Settings(redis_url=services.redis_url, database_url=empty_database)
    with metrics_server(served) as url:
        answer = requests.get(f"{url}/status", timeout=10)
        page = requests.get(f"{url}/", timeout=10)
        source_answer = requests.get(f"{url}/status/sources/shop", timeout=10)
        source_page = requests.get(f"{url}/sources/shop", timeout=10)
    assert answer.status_code == page.status_code == source_answer.status_code == source_page.status_code == 503
    missing = "the database has no ingest schema: run ingest db migrate"
    assert answer.json() == source_answer.json() == {"error": missing}
    assert missing in page.text and missing in source_page.text
