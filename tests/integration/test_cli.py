"""The `ingest` command as a user meets it: help, one-line errors, and the demo for real."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg2.extensions
import pytest
from click.testing import CliRunner

from ingest_workers.cli import main
from ingest_workers.core.config import Settings, load_settings
from ingest_workers.testing import DEMO_CATALOG
from ingest_workers.testing.devservices import Services
from ingest_workers.testing.mock_sources import MockServer
from tests.helpers import DATASET_TABLES, DEFAULT_SOURCES, broken_products, expected_refused, scalar, write_catalog

pytestmark = pytest.mark.integration

COMMANDS = [[], ["db"], ["db", "migrate"], ["enqueue"], ["run"], ["demo"], ["mock-sources"], ["metrics-server"],
            ["status"], ["schedule"], ["failed"], ["failed", "list"], ["failed", "retry"], ["failed", "purge"],
            ["runs"], ["runs", "reconcile"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "ingest")
def test_every_command_explains_itself(command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage: " in result.output and len(result.output.splitlines()) > 3


def invoke(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, args, env=env)
    return result.exit_code, result.output


def test_unknown_source_lists_known_ones(tmp_path: Path) -> None:
    catalog = write_catalog(tmp_path / "c.toml", "http://127.0.0.1:1/products")
    code, output = invoke(["--catalog", str(catalog), "enqueue", "--sources", "nope"])
    assert code == 1
    assert output.strip() == "error: unknown source nope; known sources: shop_products"


def test_bad_catalog_names_file_and_key(tmp_path: Path) -> None:
    catalog = write_catalog(tmp_path / "c.toml", "http://x", extra="records_path = 5")
    code, output = invoke(["--catalog", str(catalog), "enqueue", "--sources", "all"])
    assert code == 1
    assert output.count("\n") == 1 and "key 'records_path': expected text" in output and str(catalog) in output


@pytest.mark.parametrize("command", [["enqueue", "--sources", "all"], ["run"], ["schedule"]], ids=lambda c: c[0])
def test_no_catalog_is_one_sentence_and_exit_status_2(command: list[str]) -> None:
    code, output = invoke(command, env={"INGEST_CATALOG": ""})
    assert code == 2
    assert output == ("error: no catalog: pass --catalog FILE or set INGEST_CATALOG to your catalog (`ingest demo` "
                      "runs the packaged demo catalog; the README's \"Running it for real\" shows a minimal one)\n")


def test_no_catalog_from_a_real_shell_has_no_traceback(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "INGEST_CATALOG"}
    done = subprocess.run([sys.executable, "-m", "ingest_workers", "enqueue", "--sources", "all"], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stdout == "" and done.stderr.startswith("error: no catalog: ") and done.stderr.count("\n") == 1


def test_unreachable_redis_is_one_sentence_with_the_password_masked(tmp_path: Path) -> None:
    catalog = write_catalog(tmp_path / "c.toml", "http://127.0.0.1:1/products")
    code, output = invoke(["--catalog", str(catalog), "--redis-url", "redis://:hunter2@127.0.0.1:1/0", "enqueue",
                           "--sources", "all"], env={"INGEST_SERVICE_WAIT": "0"})
    assert code == 1
    assert output.startswith("error: cannot reach Redis at redis://:***@127.0.0.1:1/0")
    assert "hunter2" not in output and "Traceback" not in output and output.count("\n") == 1


def test_unreachable_postgres_is_one_sentence_with_the_password_masked() -> None:
    code, output = invoke(["--database-url", "postgresql://u:hunter2@127.0.0.1:1/x", "db", "migrate"],
                          env={"INGEST_SERVICE_WAIT": "0"})
    assert code == 1
    assert output.startswith("error: cannot reach PostgreSQL at postgresql://u:***@127.0.0.1:1/x")
    assert "hunter2" not in output and output.count("\n") == 1


def test_bad_environment_value_is_named() -> None:
    code, output = invoke(["--catalog", str(DEMO_CATALOG), "enqueue", "--sources", "all"],
                          env={"INGEST_BATCH_SIZE": "many"})
    assert code == 1 and "environment variable INGEST_BATCH_SIZE: expected a number, got 'many'" in output


def test_migrate_is_idempotent(services: Services) -> None:
    code, output = invoke(["--database-url", services.database_url, "db", "migrate"])
    assert (code, output.strip()) == (0, "schema is up to date")


@pytest.mark.timeout(660)  # two demo runs of up to 300 s each: their own timeouts speak first
def test_demo_loads_every_dataset_once_and_a_rerun_loads_nothing(
    services: Services, pg: psycopg2.extensions.connection, settings: Settings, redis_client: object, tmp_path: Path,
) -> None:
    records = 3000
    env = {**os.environ, "REDIS_URL": services.redis_url, "DATABASE_URL": services.database_url}
    command = [sys.executable, "-m", "ingest_workers", "demo", "--records", str(records), "--port", "0",
               "--workers", "2"]
    first = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert set(summary["sources"]) == set(DEFAULT_SOURCES) and summary["ok"] is True
    for source, (dataset, _) in DEFAULT_SOURCES.items():
        counts, refused = summary["sources"][source], expected_refused(source, records)
        assert (counts["fetched"], counts["rejected"], counts["duplicate"], counts["loaded"]) \
            == (records, refused, 0, records - refused), source
        table = DATASET_TABLES[dataset]
        assert scalar(pg, f"SELECT count(*) FROM {table} WHERE source = %s", source) == records - refused, source
        assert scalar(pg, "SELECT count(*) FROM rejected_records WHERE source = %s", source) == refused, source
        assert counts["health"] == "healthy"
    totals = summary["totals"]
    assert totals["fetched"] == totals["rejected"] + totals["duplicate"] + totals["loaded"] == len(DEFAULT_SOURCES) \
        * records
    assert scalar(pg, "SELECT count(*) FROM rejected_records") == totals["rejected"]
    assert scalar(pg, "SELECT count(*) FROM alerts") == scalar(
        pg, "SELECT count(*) FROM sensor_readings WHERE normalised > 0.9") > 0
    assert "shop_c_products" in first.stdout and "summary written to out/summary.json" in first.stdout

    second = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr
    again = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert again["totals"]["loaded"] == 0
    for source, counts in again["sources"].items():
        assert counts["fetched"] == counts["rejected"] + counts["duplicate"], source
    # Sources with a cursor ask only for what is at or after their mark; the others read everything again.
    assert again["sources"]["shop_products"]["fetched"] == 1
    assert again["sources"]["telegram_mentions"]["duplicate"] == records - expected_refused("telegram_mentions",
                                                                                            records)
    assert scalar(pg, "SELECT count(*) FROM products") == sum(
        records - expected_refused(s, records) for s, (d, _) in DEFAULT_SOURCES.items() if d == "products")


def test_run_works_every_queue_its_sources_use(
    services: Services, pg: psycopg2.extensions.connection, settings: Settings, redis_client: object,
    mock_server: MockServer, tmp_path: Path,
) -> None:
    url = f"{mock_server.url}/products"
    catalog = write_catalog(tmp_path / "c.toml", url, name="light",
                            extra=f'\n[sources.heavy]\nkind = "http_json"\ndataset = "products"\nurl = "{url}"\n'
                                  'queue = "ingest-test-heavy"\nfields = { product_id = "id", name = "title" }\n')
    env = {**os.environ, "REDIS_URL": services.redis_url, "DATABASE_URL": services.database_url,
           "INGEST_QUEUE": "ingest-test-light"}
    result = subprocess.run([sys.executable, "-m", "ingest_workers", "--catalog", str(catalog), "run", "--workers",
                             "1", "--timeout", "120"], env=env, cwd=tmp_path, capture_output=True, text=True,
                            timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    valid = mock_server.config.records - broken_products(mock_server.config.records)
    for source in ("light", "heavy"):
        assert scalar(pg, "SELECT count(*) FROM products WHERE source = %s", source) == valid


def test_ingest_workers_stops_its_workers_with_the_configured_grace(monkeypatch: pytest.MonkeyPatch,
                                                                     settings: Settings) -> None:
    assert load_settings(env={"INGEST_STOP_GRACE": "2400"}).stop_grace == 2400
    assert Settings().stop_grace > Settings().job_timeout  # the job in hand may run to its timeout
    graces: list[float] = []
    module = importlib.import_module("ingest_workers.cli.workers")  # the package exports the command by that name
    monkeypatch.setattr(module, "supervise", lambda start, count, should_stop, clock, stop, on_exit, **hooks: stop([]))
    # The pool stops through PoolStop, which calls the pool module's stop_workers.
    monkeypatch.setattr(importlib.import_module("ingest_workers.runtime.workerpool"), "stop_workers",
                        lambda processes, grace, say: graces.append(grace))
    result = CliRunner().invoke(main, ["workers", "--count", "1"],
                                env={"REDIS_URL": settings.redis_url, "DATABASE_URL": settings.database_url,
                                     "INGEST_STOP_GRACE": "2400"})
    assert result.exit_code == 0, result.output
    assert graces == [2400]
