"""Plain data passed between the pieces: no I/O, no imports from the package."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SourceSpec:
    """One catalog entry. It travels inside the RQ job (as JSON), so a worker on
    another host needs no copy of the catalog file. It holds no secrets: only the
    *name* of the environment variable that holds a token."""

    name: str
    kind: str
    domain: str
    url: str
    records_path: str = "items"
    page_param: str = "page"
    page_size_param: str = "per_page"
    page_size: int = 500
    fields: dict[str, str] = field(default_factory=dict)  # unified field -> dotted path in the record
    auth_env: str | None = None  # environment variable holding the auth header's value
    auth_header: str = "Authorization"
    rate_limit: float = 5.0  # requests/second to this source, all workers together (0: unlimited)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SourceSpec:
        return cls(**data)


@dataclass(frozen=True)
class Lineage:
    """Where a record came from; stamped on every loaded row."""

    source: str
    run_id: str
    job_id: str
    fetched_at: str  # ISO 8601, UTC


@dataclass(slots=True)
class Record:
    """A record on its way through the stages: the payload as served, and the row being built."""

    raw: Any
    row: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record a stage refused, with the reason; it goes to ``rejected_records``."""

    raw: Any
    reason: str
    stage: str


@dataclass
class Counts:
    """What happened to the records of one job. ``fetched == rejected + duplicate + loaded``
    once the job has finished."""

    fetched: int = 0
    rejected: int = 0
    duplicate: int = 0
    loaded: int = 0

    def add(self, other: Counts) -> None:
        for name in ("fetched", "rejected", "duplicate", "loaded"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


class Reject(Exception):
    """Raised by a record check to refuse one record; the stage turns it into :class:`Rejected`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
