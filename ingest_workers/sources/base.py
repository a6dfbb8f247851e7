"""What every source kind receives besides its catalog entry, what it must offer (:class:`Source`),
and what only some kinds can do, as protocols the pipeline checks with ``isinstance``:

- :class:`ResumableSource`: starts again at a page, for a job that runs again after its worker
  died (page numbers must address the same records again: page paging only).
- :class:`FetchesAhead`: fetches its next pages itself while its records are worked on (the
  pipeline then adds no read-ahead of its own).
- :class:`RangedSource`: reads another range of time with the same object (the windows of a job).
- :class:`SkipsRequests`: counts the requests its ``on_status`` skipped (``Counts.skipped``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from .http import HttpClient


@dataclass(frozen=True)
class SourceContext:
    """``since``: serve records at or after this mark (the source's cursor, or a window's
    start); ``until``: before this moment (a window's end). ``secrets`` is where
    ``spec.auth_env`` is looked up; ``fetch_concurrency``: requests a job keeps in flight
    where its pages' addresses are known in advance, for sources without ``concurrency``.

    ``parent``: a child source's parent record, as its parent source served it; ``partition``:
    a partitioned source's values (``{"board": "5f1a"}``). Its requests' ``{parent.PATH}`` and
    ``{partition.NAME}`` (:mod:`.templates`) and its ``fields``' ``parent.``/``partition.`` paths
    read them."""

    client: HttpClient
    secrets: Mapping[str, str] = field(default_factory=dict)
    since: Any = None
    until: Any = None
    fetch_concurrency: int = 4
    parent: Mapping[str, Any] | None = None
    partition: Mapping[str, Any] | None = None

    def scope(self) -> dict[str, Any]:
        """What the source's templates and field paths may name: ``{"parent": ..., "partition": ...}``,
        each only when given."""
        return {name: value for name, value in (("parent", self.parent), ("partition", self.partition))
                if value is not None}


@runtime_checkable
class Source(Protocol):
    """A connector: ``stream()`` yields raw records lazily (a :class:`~ingest_workers.core.models.Rejected`
    for what it could not read), so memory stays flat however large the source is."""

    def stream(self) -> Iterator[Any]: ...


@runtime_checkable
class ResumableSource(Source, Protocol):
    """A source that can start at a page other than the first."""

    @property
    def resume_page(self) -> int:
        """The first page whose records may not all have been taken yet (as of the last record yielded)."""
        ...

    def resume_from(self, page: int) -> None:
        """Start at ``page``; call before :meth:`stream`."""
        ...


@runtime_checkable
class RangedSource(Source, Protocol):
    """A source that can be pointed at another range of time between two reads (the windows of
    one job), keeping what it holds for the job (its credentials)."""

    def read_range(self, since: Any, until: Any) -> None:
        """Serve the records at or after ``since`` and before ``until`` from the next :meth:`stream` on."""
        ...


@runtime_checkable
class FetchesAhead(Source, Protocol):
    """A source that fetches its next pages concurrently and hands them over in order."""

    def pages_in_flight(self) -> int:
        """How many page requests it keeps in flight at most."""
        ...


@runtime_checkable
class SkipsRequests(Protocol):
    """A source whose requests its ``on_status`` may skip (a deleted parent's 404): ``skipped``
    counts them so far."""

    skipped: int
