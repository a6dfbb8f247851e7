"""The record path alone, reference against the prototypes (issue 28): decoded records -> rows and
rejects -> COPY text, shop A's products, in this process. CPU seconds of this process (the machine
is shared: wall time would count the others' work), best of ``rounds``, the ways alternated.

- reference: the stages (map, validate, enrich as stage objects) and ``copy_text``;
- fused closures: one loop that maps, calls the dataset's row check and stamps the lineage, no stage
  objects, ``copy_text`` (prototype B: what fusing alone gives, without generated code);
- generated: :class:`CompiledRecordPath` and :func:`copy_serialiser`, code generated per dataset
  (prototype A, kept);
- reference and generated with a user's stage that changes nothing: what a ``Stage`` costs on each path.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from ingest_workers.core.models import Lineage, Record, Reject, Rejected, SourceSpec
from ingest_workers.core.paths import value_at_parts
from ingest_workers.datasets import Dataset
from ingest_workers.load.copygen import copy_serialiser
from ingest_workers.load.loader import copy_text
from ingest_workers.stages.base import PerRecord, compose
from ingest_workers.stages.compiled import compiled_stages
from ingest_workers.stages.registry import source_stages

from .loads import BATCH, chunks

Way = Callable[[Sequence[Any]], object]


def ways(spec: SourceSpec, dataset: Dataset, lineage: Lineage) -> dict[str, Way]:
    """Each way: a page of decoded records -> (rows' COPY text, rejects), batch by batch."""
    reference = source_stages(spec, dataset, lineage)
    compiled = compiled_stages(reference, dataset, spec.fields, spec.constants, lineage)
    if compiled is None:
        raise SystemExit(f"dataset {dataset.name} has prepare stages: no compiled path")
    serialise, fused = copy_serialiser(dataset), fused_closures(spec, dataset, lineage)

    def staged(stages: list[Any], write: Callable[[Sequence[dict[str, Any]]], str]) -> Way:
        def run(records: Sequence[Any]) -> object:
            out = []
            for batch in chunks(records, BATCH):
                items = list(compose(stages, (Record(r) for r in batch)))
                out.append(write([i.row for i in items if isinstance(i, Record)]))
            return out
        return run

    # A user's stage (the Stage protocol) that changes nothing: what running one costs on each path
    user = PerRecord("user", lambda record: record)
    with_user = compiled_stages([*reference[:-1], user, reference[-1]], dataset, spec.fields, spec.constants,
                                lineage)
    assert with_user is not None
    return {"reference": staged(reference, lambda rows: copy_text(rows, dataset.load_columns)),
            "fused closures": lambda records: [copy_text(fused(batch)[0], dataset.load_columns)
                                               for batch in chunks(records, BATCH)],
            "generated": staged(compiled, serialise),
            "reference + a user stage": staged([*reference[:-1], user, reference[-1]],
                                               lambda rows: copy_text(rows, dataset.load_columns)),
            "generated + a user stage": staged(with_user, serialise)}


def fused_closures(spec: SourceSpec, dataset: Dataset, lineage: Lineage
                   ) -> Callable[[Sequence[Any]], tuple[list[dict[str, Any]], list[Rejected]]]:
    """Prototype B: map, row check and lineage in one plain loop (the reference readers, no codegen)."""
    paths = {target: path.split(".") for target, path in spec.fields.items()}
    constants, check = dict(spec.constants), dataset.check
    stamp = {"source": lineage.source, "run_id": lineage.run_id, "job_id": lineage.job_id,
             "fetched_at": lineage.fetched_at}

    def run(records: Sequence[Any]) -> tuple[list[dict[str, Any]], list[Rejected]]:
        rows, rejected = [], []
        for raw in records:
            if raw.__class__ is not dict:
                rejected.append(Rejected(raw, f"record is a JSON {type(raw).__name__}, not an object", "map"))
                continue
            mapped = dict(raw)
            for target, parts in paths.items():
                mapped[target] = value_at_parts(raw, parts)
            mapped.update(constants)
            try:
                row = check(mapped)
            except Reject as exc:
                rejected.append(Rejected(raw, exc.reason, "validate"))
                continue
            row.update(stamp)
            row["raw"] = raw
            rows.append(row)
        return rows, rejected

    return run


def measure(records: Sequence[Any], spec: SourceSpec, dataset: Dataset, lineage: Lineage,
            rounds: int = 5) -> dict[str, float]:
    """Records/s of each way (best of ``rounds`` in CPU seconds, alternated); checks that all
    three write the same COPY text first."""
    chosen = ways(spec, dataset, lineage)
    sample = records[:2 * BATCH]
    texts = {name: way(sample) for name, way in chosen.items()}
    if len({repr(text) for text in texts.values()}) != 1:
        raise SystemExit("the record path prototypes do not write the same COPY text")
    best = {name: float("inf") for name in chosen}
    for _ in range(rounds):
        for name, way in chosen.items():
            started = time.process_time()
            way(records)
            best[name] = min(best[name], time.process_time() - started)
    return {name: len(records) / seconds for name, seconds in best.items()}


if __name__ == "__main__":  # python -m benchmarks.fastpath [RECORDS]
    import sys
    from datetime import UTC, datetime
    from pathlib import Path

    from ingest_workers.core.config import Settings
    from ingest_workers.datasets import PRODUCTS

    from .loads import served_records
    from .services import Bench

    shop = Bench(Settings(), "http://127.0.0.1:9", 0, Path(".")).spec
    figures = measure(served_records(int(sys.argv[1]) if len(sys.argv) > 1 else 50_000), shop, PRODUCTS,
                      Lineage(shop.name, "bench", "bench-fastpath", datetime.now(UTC).isoformat()))
    for name, rate in figures.items():
        print(f"{name:>25}: {rate:10,.0f} records/s  {rate / figures['reference']:.2f}×")
