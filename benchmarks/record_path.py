"""The record path, piece by piece: Python's json against orjson for decoding a page and for the
raw jsonb of each row, and the COPY serialiser against a per-dataset one generated from the
column list (a prototype, here only). Alternated, best of ``rounds``, on shop A's records."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from ingest_workers.datasets import PRODUCTS
from ingest_workers.load import loader
from ingest_workers.load.loader import copy_text, jsonb_text, payload_jsonb_text
from ingest_workers.sources.json_decode import decode_json

from .loads import BATCH, chunks

# The products columns by the kind of value a checked row holds in them (the declaration a
# generated serialiser would be built from; issue 12's datasets declare their columns' types).
PRODUCT_KINDS = {"price": "number", "category": "text_array", "in_stock": "boolean", "raw": "json"}


def measure(records: list[Any], rows: list[dict[str, Any]], rounds: int = 5) -> dict[str, float]:
    """Seconds (best of ``rounds``, alternated) for each way, over all the pages / rows."""
    pages = [json.dumps({"items": list(page), "total": len(records)}, separators=(",", ":")).encode()
             for page in chunks(records, 500)]
    payloads = [row["raw"] for row in rows]
    generated = generated_serialiser(PRODUCTS.load_columns, PRODUCT_KINDS)
    ways: dict[str, Callable[[], object]] = {
        "decode: json": lambda: [json.loads(p.decode("utf-8", errors="replace")) for p in pages],
        "decode: orjson first": lambda: [decode_json(p) for p in pages],
        "raw jsonb: json": lambda: [jsonb_text(p) for p in payloads],
        "raw jsonb: orjson first": lambda: [payload_jsonb_text(p) for p in payloads],
        "COPY text: json for raw": lambda: _with_json_raw(rows),
        "COPY text: orjson for raw (kept)": lambda: [copy_text(b, PRODUCTS.load_columns) for b in chunks(rows, BATCH)],
        "COPY text: generated per dataset, orjson": lambda: [generated(b) for b in chunks(rows, BATCH)],
    }
    if generated(rows[:BATCH]) != copy_text(rows[:BATCH], PRODUCTS.load_columns):
        raise SystemExit("the generated serialiser does not write what copy_text writes")
    best = {name: float("inf") for name in ways}
    for _ in range(rounds):
        for name, way in ways.items():
            started = time.perf_counter()
            way()
            best[name] = min(best[name], time.perf_counter() - started)
    return best


def _with_json_raw(rows: Sequence[dict[str, Any]]) -> None:
    saved = loader.payload_jsonb_text
    loader.payload_jsonb_text = jsonb_text  # the serialiser as it was before orjson
    try:
        for batch in chunks(rows, BATCH):
            copy_text(batch, PRODUCTS.load_columns)
    finally:
        loader.payload_jsonb_text = saved


def generated_serialiser(columns: Sequence[str], kinds: dict[str, str]) -> Callable[[Sequence[dict[str, Any]]], str]:
    """One expression per row, built once from the column list and kinds: no dispatch on the
    type of each value (text is the default kind)."""
    exprs = []
    for index, column in enumerate(columns):
        value = f"r.get({column!r})"
        kind = kinds.get(column, "text")
        body = {"text": f"(v{index}.translate(T) if S(v{index}) else v{index})",
                "number": f"str(v{index})",
                "boolean": f"('t' if v{index} else 'f')",
                "text_array": f"F(v{index})",
                "json": f"F(v{index})"}[kind]
        exprs.append(f"('\\\\N' if (v{index} := {value}) is None else {body})")
    source = "def serialise(rows):\n    return ''.join([" + " + '\\t' + ".join(exprs) + " + '\\n' for r in rows])\n"
    namespace: dict[str, Any] = {"T": loader._COPY_ESCAPES, "S": loader._NEEDS_ESCAPE.search,
                                 "F": loader._copy_field}
    exec(compile(source, "<generated serialiser>", "exec"), namespace)  # noqa: S102 (our own column names)
    return namespace["serialise"]
