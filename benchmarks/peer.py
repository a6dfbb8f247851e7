"""The peer: the same rows through dlt into the same PostgreSQL (installed in .venv-bench only)."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit


def dlt_credentials(database_url: str) -> str:
    """dlt insists on a password in the URL, even where the server trusts the user."""
    parts = urlsplit(database_url)
    if parts.password or "@" not in parts.netloc:
        return database_url
    user, host = parts.netloc.rsplit("@", 1)
    return urlunsplit(parts._replace(netloc=f"{user}:unused@{host}"))


def dlt_load(database_url: str, rows: Sequence[dict[str, Any]], disposition: str) -> tuple[float, str]:
    """Seconds for ``dlt.pipeline(...).run(rows)`` with ``disposition`` (append, or merge on
    ``product_id``), and dlt's version. Extract, normalise and load are all timed."""
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    import dlt  # only in .venv-bench: dlt is what we compare with, not a dependency

    with tempfile.TemporaryDirectory(prefix="bench-dlt-") as workdir:
        pipeline = dlt.pipeline(pipeline_name=f"bench_{disposition}", pipelines_dir=workdir,
                                destination=dlt.destinations.postgres(credentials=dlt_credentials(database_url)),
                                dataset_name=f"dlt_{disposition}", progress=None)
        hints: dict[str, Any] = {"write_disposition": disposition,
                                 "columns": {"category": {"data_type": "json"}, "raw": {"data_type": "json"}}}
        if disposition == "merge":
            hints["primary_key"] = "product_id"
        started = time.perf_counter()
        info = pipeline.run(list(rows), table_name="products", **hints)
        elapsed = time.perf_counter() - started
        info.raise_on_failed_jobs()
        return elapsed, dlt.__version__


def dlt_rest_api(database_url: str, mock_url: str, disposition: str, records: int,
                 file_format: str | None = None) -> tuple[float, str]:
    """Seconds for dlt's ``rest_api`` source to read shop A's products over HTTP from the mock
    (``/products?per_page=500&page=N`` until an empty page, as ours pages) and load them with
    ``disposition`` (append, or merge on ``id``), ``file_format`` None for dlt's default
    (``insert_values``) or e.g. ``csv`` (COPY); and the label of the configuration. Checks that
    every record arrived."""
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    import dlt  # only in .venv-bench
    from dlt.sources.rest_api import rest_api_source

    resource: dict[str, Any] = {
        "name": "products",
        "write_disposition": disposition,
        "columns": {"category": {"data_type": "json"}},  # as the in-memory row: one table, no child table
        "endpoint": {"path": "products", "params": {"per_page": 500}, "data_selector": "items",
                     "paginator": {"type": "page_number", "base_page": 1, "page_param": "page",
                                   "total_path": None}},
    }
    if disposition == "merge":
        resource["primary_key"] = "id"
    label = f"{disposition}{f', loader_file_format={file_format}' if file_format else ''}"
    dataset = f"dlt_http_{disposition}_{file_format or 'default'}"
    with tempfile.TemporaryDirectory(prefix="bench-dlt-http-") as workdir:
        pipeline = dlt.pipeline(pipeline_name=dataset, pipelines_dir=workdir,
                                destination=dlt.destinations.postgres(credentials=dlt_credentials(database_url)),
                                dataset_name=dataset, progress=None)
        source = rest_api_source({"client": {"base_url": mock_url + "/"}, "resources": [resource]})
        started = time.perf_counter()
        info = pipeline.run(source, loader_file_format=file_format)  # type: ignore[arg-type]
        elapsed = time.perf_counter() - started
        info.raise_on_failed_jobs()
        with pipeline.sql_client() as client:
            loaded = client.execute_sql("SELECT count(*) FROM products")[0][0]
    if loaded != records:
        raise SystemExit(f"dlt rest_api ({label}): {loaded} of {records} records loaded")
    return elapsed, label
