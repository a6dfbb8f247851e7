"""Source connectors, one module per kind, and the registry the catalog names them by.

A source is any object with ``stream() -> Iterator[raw record]`` (:class:`.base.Source`); it
yields lazily, page by page or row by row, so memory stays flat however large the source is.
What only some kinds can do (resume at a page, fetch ahead) are protocols of :mod:`.base`. A
kind is built as ``Kind(spec, context)``; a plugin kind (``package.module:Class``) follows
the same contract.

- :mod:`.http_json`, :mod:`.csv_file`, :mod:`.synthetic`: the built-in kinds.
- :mod:`.http`: the HTTP client they share (timeouts, retries with tenacity, body caps).
- :mod:`.auth`, :mod:`.oauth2`, :mod:`.auth_kinds`: the :class:`Authenticator` protocol and the
  kinds a source's ``auth`` names (static ones read from the worker's environment per request, OAuth2).
- :mod:`.paginators`: the :class:`Paginator` protocol and the built-in paginations of ``http_json``.
- :mod:`.probe` and :mod:`.draft`: ``ingest catalog draft``, a catalog entry from what an API serves.
- :mod:`.prefetch`: read a source ahead in a thread while the job works on what it served.
- :mod:`.templates`: ``{parent.PATH}`` and ``{partition.NAME}`` in a request, filled from the context.

May import: ``core``, ``datasets`` (the draft's column types).
"""

from __future__ import annotations

from typing import Any

from ..core.models import SourceSpec
from ..core.plugins import PluginAllowlist, resolve
from .auth import ApiRequest, Authenticator, RenewsCredentials
from .base import FetchesAhead, RangedSource, ResumableSource, SkipsRequests, Source, SourceContext
from .csv_file import CsvSource
from .http import JsonPage
from .http_json import http_json_source
from .paginators import NumberedPages, Paginator
from .synthetic import SyntheticSource

SOURCE_KINDS: dict[str, Any] = {"http_json": http_json_source, "csv": CsvSource, "synthetic": SyntheticSource}


def source_class(kind: str, allow: PluginAllowlist | None = None) -> Any:
    """The class of a built-in kind or of a plugin ``package.module:ClassName`` whose module ``allow``
    allows (see :func:`.resolve`); ConfigError otherwise."""
    return resolve(kind, SOURCE_KINDS, "source kind", allow)


def make_source(spec: SourceSpec, context: SourceContext) -> Source:
    """Build the connector for ``spec``."""
    return source_class(spec.kind)(spec, context)


__all__ = ["SOURCE_KINDS", "ApiRequest", "Authenticator", "FetchesAhead", "JsonPage", "NumberedPages", "Paginator",
           "RangedSource", "RenewsCredentials", "ResumableSource", "SkipsRequests", "Source", "SourceContext",
           "make_source", "source_class"]
