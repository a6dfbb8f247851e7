"""The switch of a replace dataset: when every job of a source in a run ended ``finished``, the
rows the run staged (:mod:`.replace_rows`) replace that source's rows in one transaction, so
readers see the old set or the new one, never half of each. Other sources' rows are untouched.

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

from dataclasses import dataclass
from typing import Any

from psycopg2 import sql

from ..datasets import Dataset
from .replace_rows import staged_table

UNFINISHED = ("enqueued", "started", "deferred", "retrying")


@dataclass(frozen=True)
class Switch:
    """What a switch did: ``replaced`` (``deleted`` rows gone, ``written`` inserted or changed), or ``refused``."""

    outcome: str
    detail: str
    deleted: int = 0
    written: int = 0


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
    cur.execute("INSERT INTO replace_switches (source, run_id, outcome, detail, deleted) VALUES (%s, %s, %s, %s, %s)",
                (source, run_id, done.outcome, done.detail, done.deleted))
    return done


def _replace(cur: Any, dataset: Dataset, source: str, run_id: str) -> Switch:
    """Delete the source's rows the run did not stage; insert or update the staged ones (a row
    whose values are the same is not rewritten: its ``xmin`` stays)."""
    target, staged = sql.Identifier(dataset.table), sql.Identifier(staged_table(dataset))
    match = sql.SQL(" AND ").join(sql.SQL("s.{c} = t.{c}").format(c=sql.Identifier(c)) for c in dataset.key)
    cur.execute(sql.SQL("DELETE FROM {target} t WHERE t.source = %(source)s AND NOT EXISTS (SELECT 1 FROM {staged} s "
                        "WHERE s.source = %(source)s AND s.run_id = %(run)s AND {match})").format(
        target=target, staged=staged, match=match), {"source": source, "run": run_id})
    deleted = cur.rowcount
    columns = sql.SQL(", ").join(map(sql.Identifier, dataset.load_columns))
    data = [c for c in dataset.column_names if c not in dataset.unique_key]
    changed = sql.SQL("ROW({}) IS DISTINCT FROM ROW({})").format(
        sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in data),
        sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(sql.Identifier(c)) for c in data)) if data else sql.SQL(
        "false")
    assign = sql.SQL(", ").join(sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c))
                                for c in dataset.load_columns if c not in dataset.unique_key)
    cur.execute(sql.SQL("INSERT INTO {target} AS t ({columns}) SELECT {columns} FROM {staged} "
                        "WHERE source = %(source)s AND run_id = %(run)s "
                        "ON CONFLICT ({key}) DO UPDATE SET {assign}, loaded_at = now() WHERE {changed}").format(
        target=target, columns=columns, staged=staged, assign=assign, changed=changed,
        key=sql.SQL(", ").join(map(sql.Identifier, dataset.unique_key))), {"source": source, "run": run_id})
    written = cur.rowcount
    return Switch("replaced", f"run {run_id} replaced the rows of source {source} in {dataset.table}: "
                              f"{deleted} gone, {written} new or changed", deleted, written)


def _drop_staged(cur: Any, dataset: Dataset, source: str, run_id: str) -> None:
    cur.execute(sql.SQL("DELETE FROM {} WHERE source = %s AND run_id = %s").format(
        sql.Identifier(staged_table(dataset))), (source, run_id))
