"""A parent job's side of fan-out: each batch's parent records go to the outbox (``load.outbox``)
in the batch's own transaction, and the child jobs planned there go to Redis after the commit.

Which records are parents, per child source: ``fan_out = "all"`` (the default) every record of the
batch that passed its checks, duplicates included (a run re-reads every parent's children);
``"changed"`` only those the batch inserted or updated. A batch that runs again plans nothing twice
(the outbox's keys), and a job that runs again first relays the children it planned and that have
not started yet (a worker killed between a commit and the enqueue).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..core.models import Lineage, Record, SourceSpec
from ..datasets import Dataset
from ..load.outbox import ChildJob, Parent, listed_children, parent_key, plan_children
from ..load.pgretry import PostgresRetry


@dataclass(frozen=True)
class Handoff:
    """How a job hands on its child jobs: the queue of a child source's jobs (from its spec dict),
    and the relay that enqueues planned jobs (``runtime.relay``), called after each commit."""

    queue_for: Callable[[Mapping[str, Any]], str]
    relay: Callable[[Sequence[ChildJob]], object]


class FanOut:
    """A :class:`~.batches.BatchHook` writing the batch's parents of each child source of ``spec``."""

    def __init__(self, spec: SourceSpec, dataset: Dataset, lineage: Lineage, postgres: PostgresRetry,
                 handoff: Handoff) -> None:
        self._all = [child for child in spec.children if child.get("fan_out", "all") == "all"]
        self._changed = [child for child in spec.children if child.get("fan_out") == "changed"]
        self._dataset, self._lineage, self._postgres, self._handoff = dataset, lineage, postgres, handoff
        self._planned = False

    @classmethod
    def of(cls, spec: SourceSpec, dataset: Dataset, lineage: Lineage, postgres: PostgresRetry,
           handoff: Handoff | None) -> list[FanOut]:
        """The hook for a job of ``spec``: none when it has no child source (or nowhere to hand on)."""
        if not spec.children or handoff is None:
            return []
        hook = cls(spec, dataset, lineage, postgres, handoff)
        hook.relay_listed()  # what an earlier attempt planned and never got to Redis
        return [hook]

    def in_transaction(self, records: list[Record], covered: list[Record]) -> Callable[[Any], None] | None:
        """``fan_out = "all"``: every valid record of the batch is a parent."""
        if not self._all or not records:
            return None
        key = self._dataset.key
        parents = [Parent(parent_key(key, record.row), record.raw) for record in records]
        return lambda cur: self._plan(cur, self._all, parents)

    def on_written(self, cur: Any, rows: list[dict[str, Any]]) -> None:
        """``fan_out = "changed"``: the rows this transaction inserted or updated are parents."""
        if self._changed and rows:
            key = self._dataset.key
            self._plan(cur, self._changed, [Parent(parent_key(key, row), row["raw"]) for row in rows])

    def after_commit(self) -> None:
        if self._planned:
            self._planned = False
            self.relay_listed()

    def relay_listed(self) -> None:
        """Enqueue the child jobs this job planned that have not started (their claims stop a second copy)."""
        jobs = self._postgres.run(lambda conn: listed_children(conn, self._lineage.job_id))
        self._handoff.relay(jobs)

    def _plan(self, cur: Any, children: Sequence[Mapping[str, Any]], parents: Sequence[Parent]) -> None:
        for child in children:
            plan_children(cur, self._lineage.run_id, dict(child), self._handoff.queue_for(child), parents,
                          self._lineage.job_id)
        self._planned = True
