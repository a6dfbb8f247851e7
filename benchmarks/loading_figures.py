"""Figures of rows loaded by this process: the COPY ceiling and our loader, the record path alone,
the naive loader, dlt given its rows in memory."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from ingest_workers.core.models import Lineage
from ingest_workers.datasets import PRODUCTS

from . import fastpath, loads, peer, record_path
from .common import best_of_two, label, say
from .parts import Parts
from .report import Figure
from .services import Bench


def loader_figures(bench: Bench, rows: list, lineage: Lineage, figures: list[Figure], value: dict) -> None:
    say("load ceiling vs our loader (best of 2 each, alternated)")
    ceiling_s, loader_s = best_of_two(lambda: loads.copy_ceiling(bench.settings.database_url, rows),
                                       lambda: loads.our_loader(bench.settings.database_url, rows, lineage))
    ceiling = len(rows) / ceiling_s
    figures.append(Figure("Load ceiling: one plain COPY, pre-serialised, into an empty table without keys",
                          ceiling, "rows/s"))
    loader = len(rows) / loader_s
    serialise = len(rows) / loads.serialise_only(rows)
    server = len(rows) / loads.server_only(bench.settings.database_url, rows, staging=False)
    fallback = len(rows) / loads.server_only(bench.settings.database_url, rows, staging=True)
    figures.append(Figure(
        "Our loader alone: `PostgresLoader.load_batch`, 1,000 rows per transaction, serialisation included",
        loader, "rows/s", "ceiling", ceiling, 0.6,
        why=f"the loader is its client part (COPY text made in Python by the serialiser generated for the "
            f"dataset, orjson for the raw jsonb: {serialise / ceiling:.2f}× the ceiling on its own) plus its server "
            f"part (COPY into the table with its key and two indexes, a savepoint and a commit per 1,000 rows: "
            f"{server / ceiling:.2f}× on its own, which bounds the loader whatever the client does). Done one "
            f"after the other they would give {1 / (ceiling / serialise + ceiling / server):.2f}×; streaming the "
            "COPY overlaps them only in part (the commit and the end of each COPY wait for the server). What "
            "would: fewer, larger transactions, or loading from several processes."))
    batched = len(rows) / loads.copy_ceiling(bench.settings.database_url, rows, loads.BATCH)
    figures.append(Figure("Plain COPY, pre-serialised, one transaction per 1,000 rows (the loader's "
                          "granularity)", batched, "rows/s", "ceiling", ceiling))
    figures.append(Figure("Our loader alone", loader, "rows/s", "COPY per 1,000 rows", batched))
    figures.append(Figure("… its client part alone: COPY text serialisation, in Python", serialise, "rows/s",
                          "ceiling", ceiling))
    figures.append(Figure("… its server part alone: savepoint, pre-serialised COPY into `products` (keys, "
                          "indexes), commit, per 1,000 rows", server, "rows/s", "ceiling", ceiling))
    figures.append(Figure("… its server part when a batch repeats a key: COPY → temp staging → INSERT … "
                          "ON CONFLICT DO NOTHING", fallback, "rows/s", "ceiling", ceiling))
    value["ceiling"] = ceiling


def record_path_figures(bench: Bench, rows: list, figures: list[Figure], values: dict) -> None:
    say("record path: json vs orjson, COPY serialisers")
    records = loads.served_records(min(len(rows), 50_000))
    best = record_path.measure(records, rows[:50_000])
    pairs = [("decode: orjson first", "decode: json", "Decoding 500-record pages: orjson (Python's json for what "
              "it refuses)"),
             ("raw jsonb: orjson first", "raw jsonb: json", "The raw jsonb text of each row: orjson"),
             ("COPY text: orjson for raw (kept)", "COPY text: json for raw", "COPY text of a batch, with orjson for "
              "the raw column (kept)"),
             ("COPY text: generated per dataset, orjson", "COPY text: orjson for raw (kept)", "COPY text made by a "
              "per-dataset serialiser generated from the column kinds (issue 12's prototype; issue 28 keeps "
              "`load/copygen.py`)")]
    for fast, slow, name in pairs:
        figures.append(Figure(name, best[slow] / best[fast], "× faster", "", 0))
    lineage = Lineage(bench.spec.name, "bench", "bench-fastpath", datetime.now(UTC).isoformat())
    rates = fastpath.measure(records, bench.spec, PRODUCTS, lineage)
    values["record path"] = rates["generated"] / rates["reference"]
    what = "The record path alone: decoded records -> rows and rejects -> COPY text (CPU seconds, best of 5)"
    figures.append(Figure(f"{what}: reference (stage objects, `copy_text`)", rates["reference"], "records/s"))
    figures.append(Figure("… fused closures: one loop, the dataset's row check, `copy_text` (prototype B)",
                          rates["fused closures"], "records/s", "reference", rates["reference"]))
    figures.append(Figure("… generated per dataset: `CompiledRecordPath` + `copy_serialiser` (prototype A, kept)",
                          rates["generated"], "records/s", "reference", rates["reference"]))
    figures.append(Figure("… generated, with a user's stage (the `Stage` protocol) that changes nothing",
                          rates["generated + a user stage"], "records/s", "reference with the same stage",
                          rates["reference + a user stage"]))


def naive(args: argparse.Namespace, bench: Bench, rows: list, figures: list[Figure], ceiling: float,
           end_to_end: float) -> None:
    say(f"naive: one INSERT per row, {args.naive_rows:,} rows")
    naive = args.naive_rows / loads.naive_inserts(bench.settings.database_url, rows[:args.naive_rows])
    figures.append(Figure(f"Naive: one process, one INSERT and commit per row ({args.naive_rows:,} rows)",
                          naive, "rows/s", "ceiling", ceiling))
    figures.append(Figure(f"End to end, recommended ({label(args.recommended)}, {args.recommended_workers} "
                          "workers), vs naive", end_to_end, "records/s", "naive", naive))


def dlt_in_memory(args: argparse.Namespace, bench: Bench, rows: list, figures: list[Figure], parts: Parts) -> None:
    say("dlt append and merge")
    ceiling = parts.need("ceiling")
    append_s, dlt_version = peer.dlt_load(bench.settings.database_url, rows, "append")
    merge_s, _ = peer.dlt_load(bench.settings.database_url, rows, "merge")
    dlt_merge = len(rows) / merge_s
    recommended = parts.values.get("recommended")
    if recommended is not None:
        figures.append(Figure(f"End to end, recommended: {label(args.recommended)}, {args.recommended_workers} "
                              "workers", recommended, "records/s", "dlt merge (rows in memory)", dlt_merge, 3,
                              why="see the profile: the per-record Python path (stages and serialisation) and the "
                                  "shared 2 cores bound it; dlt was given its rows in memory (no HTTP), which "
                                  "favours it."))
    figures += [
        Figure(f"dlt {dlt_version} append (records in memory, no HTTP)", len(rows) / append_s, "rows/s",
               "ceiling", ceiling),
        Figure(f"dlt {dlt_version} merge on product_id (records in memory, no HTTP)", dlt_merge, "rows/s",
               "ceiling", ceiling),
    ]
