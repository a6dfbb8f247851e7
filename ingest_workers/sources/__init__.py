"""Source connectors, one module per kind, and the registry the catalog names them by.

A source is any object with ``stream() -> Iterator[raw record]``; it yields lazily,
page by page, so memory stays flat however large the source is.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from ..http import HttpClient
from ..models import SourceSpec
from .http_json import HttpJsonSource


class Source(Protocol):
    def stream(self) -> Iterator[Any]: ...


SOURCE_KINDS = {"http_json": HttpJsonSource}


def make_source(spec: SourceSpec, client: HttpClient, secrets: Mapping[str, str]) -> Source:
    """Build the connector for ``spec``; ``secrets`` is where ``spec.auth_env`` is looked up."""
    return SOURCE_KINDS[spec.kind](spec, client, secrets)
