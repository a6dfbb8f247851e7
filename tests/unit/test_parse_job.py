"""A job's source is read by the catalog's own checks (catalog.parse_job); misspelt catalog names
are answered with the nearest known one."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from ingest_workers.catalog import load_catalog, parse_job
from ingest_workers.core.errors import ConfigError, Refused
from ingest_workers.core.plugins import PluginAllowlist
from ingest_workers.testing import DEMO_CATALOG

TESTS_ONLY = PluginAllowlist(("tests.plugins",))
DECLARED = """
[datasets.orders]
key = ["order_id"]
prepare = ["sentiment"]
[datasets.orders.columns]
order_id = { type = "text" }
total = { type = "numeric" }

[sources.shop_orders]
kind = "http_json"
dataset = "orders"
url = "https://shop.example/orders"
fields = { order_id = "id" }
"""


def declared_job(tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "catalog.toml").write_text(DECLARED, encoding="utf-8")
    return load_catalog(tmp_path / "catalog.toml", {}).sources["shop_orders"].to_dict()


def test_every_shipped_source_reads_back_from_its_job(tmp_path: Path) -> None:
    declared_job(tmp_path)
    for spec in [*load_catalog(DEMO_CATALOG, {}).sources.values(),
                 *load_catalog(tmp_path / "catalog.toml", {}).sources.values()]:
        assert parse_job(spec.to_dict(), TESTS_ONLY) == spec


@pytest.mark.parametrize(("change", "message"), [
    ({"colour": 1}, "source shop_orders: unknown key 'colour'; known keys: "),
    ({"page_sise": 5}, "source shop_orders: unknown key 'page_sise'; did you mean 'page_size'?"),
    ({"page_size": "500"}, "source shop_orders key 'page_size': expected a whole number above 0, got '500'"),
    ({"max_pages": 0}, "source shop_orders key 'max_pages': expected a whole number above 0, got 0"),
    ({"rate_limit": -1}, "source shop_orders key 'rate_limit': expected requests per second, 0 or more"),
    ({"url": ["x"]}, "source shop_orders key 'url': expected text, got ['x']"),
    ({"stages": "sentiment"}, "source shop_orders key 'stages': expected a list of names or tables"),
    ({"name": "../x"}, "the job's source name '../x' is not a source name"),
    ({"declaration": {"table": "orders", "key": ["order_id"], "columns": {"order_id": {"type": "txt"}}}},
     "source shop_orders key 'declaration': [datasets.orders.columns] key 'order_id': unknown type 'txt'"),
    ({"dataset": "products", "declaration": None, "fields": {"order_id": "id"}},
     "source shop_orders key 'fields.order_id': 'order_id' is not a column of products; known: "),
])
def test_a_job_of_the_wrong_shape_is_refused_naming_the_key(tmp_path: Path, change: dict[str, Any],
                                                            message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_job({**declared_job(tmp_path), **change}, TESTS_ONLY)


def test_a_job_enqueued_before_the_rename_still_reads(tmp_path: Path) -> None:
    job = declared_job(tmp_path)
    older = {("domain" if key == "dataset" else key): value for key, value in job.items()}
    assert parse_job(older, TESTS_ONLY) == parse_job(job, TESTS_ONLY)


def test_a_job_that_is_no_table_is_refused() -> None:
    with pytest.raises(ConfigError, match="the job's source is not a table but list"):
        parse_job([], TESTS_ONLY)


@pytest.mark.parametrize("where", [("stages",), ("prepare",)])
def test_a_declaration_naming_a_module_the_worker_does_not_allow_is_refused_before_it_is_imported(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: tuple[str]) -> None:
    marker = tmp_path / "imported"
    monkeypatch.setenv("FOREIGN_PLUGIN_MARKER", str(marker))
    job = declared_job(tmp_path)
    job["declaration"][where[0]] = [{"name": "tests.foreign_plugin:Source", "spec": 1, "context": 2}]
    with pytest.raises(Refused, match=re.escape(
            f"source shop_orders key 'declaration' key '{where[0]}': stage 'tests.foreign_plugin:Source': module "
            "tests.foreign_plugin is not allowed by INGEST_PLUGINS (tests.plugins)")):
        parse_job(job, TESTS_ONLY)
    assert not marker.exists()


def test_an_allowed_plugin_passes(tmp_path: Path) -> None:
    job = {**declared_job(tmp_path), "stages": [{"name": "tests.plugins:ShoutTitles", "suffix": "?"}]}
    assert parse_job(job, TESTS_ONLY).stages == [{"name": "tests.plugins:ShoutTitles", "suffix": "?"}]
    with pytest.raises(Refused, match=r"INGEST_PLUGINS \(unset: built-ins only\)"):
        parse_job(job, PluginAllowlist())


@pytest.mark.parametrize(("text", "message"), [
    ('[sources.a]\nkind = "http_json"\ndomain = "products"\nurl = "x"\npage_sise = 3\n',
     "[sources.a]: unknown key 'page_sise'; did you mean 'page_size'?"),
    ('[sources.a]\nkind = "htp_json"\ndomain = "products"\nurl = "x"\n',
     "[sources.a] key 'kind': unknown source kind 'htp_json'; did you mean 'http_json'?"),
    ('[sources.a]\nkind = "http_json"\ndataset = "prodcts"\nurl = "x"\n', "; did you mean 'products'?"),
    ('[sources.a]\nkind = "http_json"\ndomain = "products"\nurl = "x"\nstages = ["sentimen"]\n',
     "[sources.a] key 'stages': unknown stage 'sentimen'; did you mean 'sentiment'?"),
    ('[sources.a]\nkind = "http_json"\ndomain = "products"\nurl = "x"\nsinks = ["consol"]\n',
     "[sources.a] key 'sinks': unknown sink 'consol'; did you mean 'console'?"),
    ('[sources.a]\nkind = "http_json"\ndomain = "products"\nurl = "x"\npagination = "ofset"\n',
     "; did you mean 'offset'?"),
    ('[sources.a]\nkind = "http_json"\ndomain = "products"\nurl = "x"\ncursor_field = "updated"\n',
     "key 'cursor_field': 'updated' is not a column of products; did you mean 'updated_at'?"),
    ('[sources.a]\nkind = "http_json"\ndomain = "products"\nurl = "x"\nfields = { prise = "p" }\n',
     "[sources.a] key 'fields.prise': 'prise' is not a column of products; did you mean 'price'?"),
    ('[sorces.a]\n', "unknown top-level key 'sorces'; did you mean 'sources'?"),
])
def test_a_misspelt_name_is_answered_with_the_nearest_known_one(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "catalog.toml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_catalog(tmp_path / "catalog.toml", {})


def test_a_misspelt_source_name_is_answered_with_the_nearest_one() -> None:
    with pytest.raises(ConfigError, match=re.escape("unknown source shop_product; did you mean 'shop_products'?")):
        load_catalog(DEMO_CATALOG, {}).select("shop_product")


def test_the_catalog_tells_which_variables_its_sources_read() -> None:
    assert load_catalog(DEMO_CATALOG, {}).variables() == ("INGEST_MOCK_URL", "INGEST_SYNTHETIC_RECORDS")
