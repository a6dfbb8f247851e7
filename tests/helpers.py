"""Small helpers shared by the tests."""

from __future__ import annotations

from pathlib import Path

import psycopg2.extensions


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
