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
    where its pages' addresses are known in advance, for sources without ``concurrency``."""

    client: HttpClient
    secrets: Mapping[str, str] = field(default_factory=dict)
    since: Any = None
    until: Any = None
    fetch_concurrency: int = 4
