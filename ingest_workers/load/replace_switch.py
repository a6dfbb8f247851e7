"""The switch of a replace dataset: when every job of a source in a run ended ``finished``, the
rows the run staged (:mod:`.replace_rows`) replace that source's rows in one transaction, so
readers see the old set or the new one, never half of each. Other sources' rows are untouched.
The rows of the datasets nested in it (staged with their parents) are replaced in the same
transaction: the items of a withdrawn parent go with it.

Who switches: the job that ends last among the source's jobs in the run. Each job asks twice:
just before it records ``finished`` (counting itself as finished: a kill between its end and the
switch cannot leave the run unswitched, since its rows are all staged by then), and once it has
recorded its end (two jobs ending at once each see the other unfinished the first time). Not a
run watcher: a run enqueued by ``ingest schedule`` or a producer has none, and a watcher that is
stopped would leave the switch undone. Exactly once: the
switch writes its ``replace_switches`` row (primary key source and run) in its own transaction,
and an advisory lock per source serialises the jobs asking, so a second job, a retried one, or a
job replayed after a crash finds the row and does nothing.

A run in which a job of the source failed or lost pages replaces nothing: the switch row says
``refused`` and why, and the run's staged rows are dropped. A run whose job never ends (timed
out, abandoned and not run again) switches nothing and leaves its staged rows (keyed by its run).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from psycopg2 import sql
from psycopg2.extras import Json

from ..datasets import Dataset
from .replace_rows import changed, staged_table

UNFINISHED = ("enqueued", "started", "deferred", "retrying")


@dataclass(frozen=True)
class Switch:
    """What a switch did: ``replaced`` (``deleted`` rows gone, ``written`` inserted or changed), or ``refused``."""

    outcome: str
    detail: str
    deleted: int = 0
    written: int = 0
    nested: dict[str, int] = field(default_factory=dict)  # nested dataset -> its rows gone with the switch


def switch_if_complete(cur: Any, dataset: Dataset, source: str, run_id: str,
                       finishing: str | None = None) -> Switch | None:
    """In the caller's transaction: switch ``source``'s rows to those ``run_id`` staged if every job
    of the source in the run ended ``finished`` (``finishing``: a job about to, counted as finished);
    refuse (and say so) if one ended otherwise. None: a job is still to end, or the switch was made
    (or refused) already."""
    cur.execute("SELECT pg_advisory_xact_lock(hashtext('replace'), hashtext(%s))", (source,))
    cur.execute("SELECT 1 FROM replace_switches WHERE source = %s AND run_id = %s", (source, run_id))
    if cur.fetchone() is not None:
        return None
    cur.execute("SELECT CASE WHEN job_id = %s THEN 'finished' ELSE status END AS ended, count(*) FROM ingest_jobs "
                "WHERE source = %s AND run_id = %s GROUP BY ended", (finishing, source, run_id))
    statuses = dict(cur.fetchall())
    if not statuses or any(status in UNFINISHED for status in statuses):
        return None
    if set(statuses) != {"finished"}:
        ended = ", ".join(f"{count} {status}" for status, count in sorted(statuses.items()))
        done = Switch("refused", f"run {run_id} replaced nothing in {dataset.table}: not every job of source "
                                 f"{source} finished ({ended})")
    else:
        done = _replace(cur, dataset, source, run_id)
    _drop_staged(cur, dataset, source, run_id)
    cur.execute("INSERT INTO replace_switches (source, run_id, outcome, detail, deleted, nested) "
                "VALUES (%s, %s, %s, %s, %s, %s)", (source, run_id, done.outcome, done.detail, done.deleted,
                                                    Json(done.nested)))
    return done


def _replace(cur: Any, dataset: Dataset, source: str, run_id: str) -> Switch:
    """The source's rows, and those of every dataset nested in it, replaced by the ones the run staged."""
    deleted, written = _replace_table(cur, dataset, source, run_id)
    nested = {child.name: _replace_table(cur, child, source, run_id)[0] for child in descendants(dataset)}
    nested = {name: gone for name, gone in nested.items() if gone}
    with_them = "; gone with them: " + ", ".join(f"{gone} {name}" for name, gone in nested.items()) if nested else ""
    return Switch("replaced", f"run {run_id} replaced the rows of source {source} in {dataset.table}: "
                              f"{deleted} gone, {written} new or changed{with_them}", deleted, written, nested)


def _replace_table(cur: Any, dataset: Dataset, source: str, run_id: str) -> tuple[int, int]:
    """Delete the source's rows the run did not stage (a nested dataset's key starts with its
    parent's: the items of a withdrawn parent go with it); insert or update the staged ones (a row
    whose values are the same is not rewritten: its ``xmin`` stays). Return (deleted, written)."""
    target, staged = sql.Identifier(dataset.table), sql.Identifier(staged_table(dataset))
    match = sql.SQL(" AND ").join(sql.SQL("s.{c} = t.{c}").format(c=sql.Identifier(c)) for c in dataset.key)
    cur.execute(sql.SQL("DELETE FROM {target} t WHERE t.source = %(source)s AND NOT EXISTS (SELECT 1 FROM {staged} s "
                        "WHERE s.source = %(source)s AND s.run_id = %(run)s AND {match})").format(
        target=target, staged=staged, match=match), {"source": source, "run": run_id})
    deleted = cur.rowcount
    columns = sql.SQL(", ").join(map(sql.Identifier, dataset.load_columns))
    assign = sql.SQL(", ").join(sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c))
                                for c in dataset.load_columns if c not in dataset.unique_key)
    cur.execute(sql.SQL("INSERT INTO {target} AS t ({columns}) SELECT {columns} FROM {staged} "
                        "WHERE source = %(source)s AND run_id = %(run)s "
                        "ON CONFLICT ({key}) DO UPDATE SET {assign}, loaded_at = now() WHERE {changed}").format(
        target=target, columns=columns, staged=staged, assign=assign, changed=changed(dataset, "t", "excluded"),
        key=sql.SQL(", ").join(map(sql.Identifier, dataset.unique_key))), {"source": source, "run": run_id})
    return deleted, cur.rowcount


def descendants(dataset: Dataset) -> list[Dataset]:
    """The datasets nested in ``dataset`` at any depth (each staged and switched with it)."""
    return [d for child in dataset.nested for d in (child, *descendants(child))]


def _drop_staged(cur: Any, dataset: Dataset, source: str, run_id: str) -> None:
    for staged in (dataset, *descendants(dataset)):
        cur.execute(sql.SQL("DELETE FROM {} WHERE source = %s AND run_id = %s").format(
            sql.Identifier(staged_table(staged))), (source, run_id))
