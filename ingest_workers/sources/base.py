"""What every source kind receives besides its catalog entry."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

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
