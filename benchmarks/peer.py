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
