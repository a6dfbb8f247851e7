"""Names the catalog uses for source kinds, stages and sinks, turned into classes.

A name is either a built-in one (``http_json``, ``threshold``, ``alerts``, ...) or a
plugin given as ``package.module:ClassName``: a user adds a source kind, a stage or
a sink by writing one class and naming it in the catalog. The contracts (plain
protocols, no base class needed):

- source kind: ``Cls(spec, context)`` with ``stream() -> Iterator[raw record]``
- stage: ``Cls(**params)`` with ``process(items) -> Iterator[items]`` (pure)
- sink: ``Cls(context, **params)`` with ``consume(rows)``; ``in_transaction = True``
  makes the pipeline call it inside the batch's PostgreSQL transaction.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from typing import Any

from .errors import ConfigError

_DOTTED = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


def resolve(name: str, builtins: Mapping[str, Any], what: str) -> Any:
    """The class named ``name``: a key of ``builtins`` or ``package.module:ClassName``.

    Raises :class:`ConfigError` saying what is known when the name resolves to nothing.
    """
    if name in builtins:
        return builtins[name]
    if not _DOTTED.fullmatch(name):
        raise ConfigError(f"unknown {what} {name!r}; known: {', '.join(builtins)}, or 'package.module:ClassName'")
    module_name, _, attribute = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{what} {name!r}: cannot import {module_name} ({exc})") from None
    found = getattr(module, attribute, None)
    if found is None:
        raise ConfigError(f"{what} {name!r}: {module_name} has no {attribute}")
    return found


def split_entry(entry: Any, what: str) -> tuple[str, dict[str, Any]]:
    """A stage or sink entry of the catalog: ``"name"`` or ``{name = "...", param = ...}``."""
    if isinstance(entry, str):
        return entry, {}
    if isinstance(entry, dict) and isinstance(entry.get("name"), str):
        params = dict(entry)
        return params.pop("name"), params
    raise ConfigError(f"a {what} is a name or a table with a 'name' key, got {entry!r}")
