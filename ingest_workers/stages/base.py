"""Composable, pure record stages: no network, clock or Redis in here.

A stage takes an iterable of items and yields items, lazily, so a pipeline of any
length holds one record at a time. An item is a :class:`Record` on its way, or a
:class:`Rejected` that earlier stages refused; stages pass rejections through.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import reduce
from typing import Any, Protocol

from ..core.models import Lineage, Record, Reject, Rejected
from ..core.paths import value_at_parts
from ..datasets import Dataset

Item = Record | Rejected


class Stage(Protocol):
    name: str

    def process(self, items: Iterable[Item]) -> Iterator[Item]: ...


@dataclass(frozen=True)
class PerRecord:
    """A stage made of a function applied to each record; a :class:`Reject` it raises
    becomes a :class:`Rejected` naming this stage, and never stops the stream."""

    name: str
    apply: Callable[[Record], Record]

    def process(self, items: Iterable[Item]) -> Iterator[Item]:
        for item in items:
            if isinstance(item, Rejected):
                yield item
                continue
            try:
                yield self.apply(item)
            except Reject as exc:
                yield Rejected(item.raw, exc.reason, self.name)


def compose(stages: Sequence[Stage], items: Iterable[Item]) -> Iterator[Item]:
    """Chain the stages lazily, first to last. Consecutive :class:`PerRecord` stages run as one
    loop (the same items come out, with one generator per record instead of one per stage)."""
    return iter(reduce(lambda stream, stage: stage.process(stream), _fused(stages), items))


@dataclass(frozen=True)
class PerRecordChain:
    """Several :class:`PerRecord` stages applied in turn to each record; a :class:`Reject`
    names the stage that raised it, and the record skips the rest of the chain."""

    stages: tuple[PerRecord, ...]

    @property
    def name(self) -> str:
        return "+".join(stage.name for stage in self.stages)

    def process(self, items: Iterable[Item]) -> Iterator[Item]:
        for item in items:
            for stage in self.stages:
                if isinstance(item, Rejected):
                    break
                try:
                    item = stage.apply(item)
                except Reject as exc:
                    item = Rejected(item.raw, exc.reason, stage.name)
            yield item


def _fused(stages: Sequence[Stage]) -> list[Stage]:
    fused: list[Stage] = []
    for stage in stages:
        if isinstance(stage, PerRecord) and fused and isinstance(fused[-1], PerRecordChain):
            fused[-1] = PerRecordChain((*fused[-1].stages, stage))
        else:
            fused.append(PerRecordChain((stage,)) if isinstance(stage, PerRecord) else stage)
    return fused


def map_fields(fields: dict[str, str], constants: dict[str, Any] | None = None,
               scope: Mapping[str, Any] | None = None) -> PerRecord:
    """Rename a source's fields to the dataset's: ``{"product_id": "id", "price": "price.amount"}``.

    Fields not named in ``fields`` are taken under their own name; ``constants`` sets
    fields every record of the source shares (``{"platform": "twitter"}``). A path whose first
    part is a key of ``scope`` reads the scope instead of the record: a child source's
    ``"parent.number"`` is its parent record's ``number`` (``scope = {"parent": record}``), a
    partitioned source's ``"partition.board"`` its partition's value.
    """
    paths = {target: path.split(".") for target, path in fields.items()}
    fixed = dict(constants or {})
    scoped = dict(scope or {})

    def apply(record: Record) -> Record:
        if not isinstance(record.raw, dict):
            raise Reject(f"record is a JSON {type(record.raw).__name__}, not an object")
        mapped = dict(record.raw)
        for target, parts in paths.items():
            mapped[target] = value_at_parts(scoped, parts) if parts[0] in scoped else value_at_parts(record.raw, parts)
        mapped.update(fixed)
        record.row = mapped
        return record

    return PerRecord("map", apply)


def validate(dataset: Dataset) -> PerRecord:
    """Check and normalise a mapped record into the dataset's row."""

    def apply(record: Record) -> Record:
        record.row = dataset.check(record.row)
        return record

    return PerRecord("validate", apply)


def enrich(lineage: Lineage) -> PerRecord:
    """Stamp where the record came from (source, run, job, fetch time) and keep the payload."""
    stamp = {"source": lineage.source, "run_id": lineage.run_id, "job_id": lineage.job_id,
             "fetched_at": lineage.fetched_at}

    def apply(record: Record) -> Record:
        record.row.update(stamp)
        record.row["raw"] = record.raw  # kept for audit
        return record

    return PerRecord("enrich", apply)


def default_stages(fields: dict[str, str], dataset: Dataset, lineage: Lineage, extra: Sequence[Stage] = (),
                   constants: dict[str, Any] | None = None, prepare: Sequence[Stage] = (),
                   scope: Mapping[str, Any] | None = None) -> list[Stage]:
    """The stages every source runs: map its fields (reading ``scope`` for its ``parent.`` and
    ``partition.`` paths), the dataset's ``prepare`` stages, validate into the dataset, the
    ``extra`` stages of its catalog entry (or dataset), then stamp lineage."""
    return [map_fields(fields, constants, scope), *prepare, validate(dataset), *extra, enrich(lineage)]
