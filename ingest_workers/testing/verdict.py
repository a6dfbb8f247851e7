"""The per-key verdict of a run, shared by the chaos run and the hosts run.

The keys a run must account for come from the fixture data the mock source served (never
from the code under test); what happened to each comes from the database: the dataset's
table (one row per loaded key) and ``rejected_records`` (each refused record, with its
reason and payload). Every expected key (source, natural key) ends as one of:

* loaded once: exactly one row and no rejection;
* rejected: no row, and one or more rejections (a re-run of a job writes each once);
* lost: neither a row nor a rejection;
* duplicated: more than one row, or a row and a rejection.

A key the database holds that was never served is a stray, counted with the duplicated.
Where the fixture knows how a record must end (a valid one loaded, a broken one rejected),
a key that ended the other way is ``unexpected``.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import psycopg2.extensions
from psycopg2 import sql

from .mock_sources.products import SHOP_A

Key = tuple[str, str]  # (source, natural key)


class Outcome(enum.Enum):
    LOADED = "loaded once"
    REJECTED = "rejected"
    LOST = "lost"
    DUPLICATED = "duplicated"


class Expect(enum.Enum):
    """How the fixture says a served record must end."""

    LOAD = "load"
    REJECT = "reject"
    EITHER = "either"  # the run may change the record (the chaos run's merge revisions)


@dataclass(frozen=True)
class KeyedTable:
    """Where a dataset keeps its keys: the table, its key column, the key's field in a payload."""

    table: str = "products"
    key: str = "product_id"
    payload_key: str = "id"


PRODUCTS = KeyedTable()


@dataclass(frozen=True)
class Stored:
    """What the database holds for some sources."""

    rows: Counter[Key]  # rows per key in the dataset's table
    rejected: frozenset[Key]  # keys with at least one record rejection (not a lost page)
    page_rejections: int = 0  # lost pages, each rejected as one row (stage ``fetch``)
    without_reason: int = 0  # rejections of any stage with an empty reason


@dataclass
class KeyVerdict:
    """Every expected key's outcome, and the figures the run's summary line shows."""

    outcomes: dict[Key, Outcome] = field(default_factory=dict)
    rows: int = 0  # rows the table holds for the sources (a key loaded twice counts twice)
    stray: int = 0  # stored keys that were never served
    unexpected: int = 0  # keys that ended otherwise than the fixture says they must
    page_rejections: int = 0
    without_reason: int = 0

    def count(self, outcome: Outcome) -> int:
        return sum(1 for found in self.outcomes.values() if found is outcome)

    @property
    def served(self) -> int:
        return len(self.outcomes)

    @property
    def rejected(self) -> int:
        return self.count(Outcome.REJECTED)

    @property
    def lost(self) -> int:
        return self.count(Outcome.LOST)

    @property
    def duplicated(self) -> int:
        return self.count(Outcome.DUPLICATED) + self.stray

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.unexpected or self.without_reason)


def served_keys(source: str, records: int, invalid_every: int, strict: bool = True) -> dict[Key, Expect]:
    """Shop A's first ``records`` products as ``source`` served them (``/products``), each with how it
    must end: with ``strict``, a valid record loaded and a broken one rejected; else either."""
    keys = {}
    for index in range(records):
        key = (source, str(SHOP_A.record(index, invalid_every)["id"]))
        refused = SHOP_A.refused(index, invalid_every)
        keys[key] = (Expect.REJECT if refused else Expect.LOAD) if strict else Expect.EITHER
    return keys


def read_stored(conn: psycopg2.extensions.connection, sources: Sequence[str],
                table: KeyedTable = PRODUCTS) -> Stored:
    """The rows and rejections of ``sources`` (one transaction)."""
    names = list(sources)
    with conn, conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT source, {} FROM {} WHERE source = ANY(%s)").format(
            sql.Identifier(table.key), sql.Identifier(table.table)), (names,))
        rows = Counter((source, str(key)) for source, key in cur.fetchall())
        cur.execute("SELECT DISTINCT source, payload->>%s FROM rejected_records WHERE source = ANY(%s) "
                    "AND stage <> 'fetch'", (table.payload_key, names))
        rejected = frozenset((source, str(key)) for source, key in cur.fetchall())
        cur.execute("SELECT count(*) FILTER (WHERE stage = 'fetch'), count(*) FILTER (WHERE coalesce(reason, '') = '') "
                    "FROM rejected_records WHERE source = ANY(%s)", (names,))
        pages, reasonless = cur.fetchone()
    return Stored(rows, rejected, int(pages), int(reasonless))


def judge(expected: Mapping[Key, Expect], stored: Stored) -> KeyVerdict:
    """Each expected key's outcome from what is stored (a pure function: the oracle is ``expected``)."""
    verdict = KeyVerdict(rows=sum(stored.rows.values()), page_rejections=stored.page_rejections,
                         without_reason=stored.without_reason)
    for key, expect in expected.items():
        outcome = _outcome(stored.rows.get(key, 0), key in stored.rejected)
        verdict.outcomes[key] = outcome
        verdict.unexpected += (outcome is Outcome.LOADED and expect is Expect.REJECT) or \
            (outcome is Outcome.REJECTED and expect is Expect.LOAD)
    verdict.stray = len(_stored_keys(stored) - expected.keys())
    return verdict


def _outcome(rows: int, rejected: bool) -> Outcome:
    if rows > 1 or (rows and rejected):
        return Outcome.DUPLICATED
    if rows:
        return Outcome.LOADED
    return Outcome.REJECTED if rejected else Outcome.LOST


def _stored_keys(stored: Stored) -> set[Key]:
    return set(stored.rows) | set(stored.rejected)


def merge_expected(parts: Iterable[Mapping[Key, Expect]]) -> dict[Key, Expect]:
    """The expected keys of several sources, as one mapping."""
    merged: dict[Key, Expect] = {}
    for part in parts:
        merged.update(part)
    return merged
