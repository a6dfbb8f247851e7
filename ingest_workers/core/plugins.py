"""Names the catalog uses for source kinds, stages and sinks, turned into classes.

A name is either a built-in one (``http_json``, ``threshold``, ``alerts``, ...) or a
plugin given as ``package.module:ClassName``: a user adds a source kind, a stage or
a sink by writing one class and naming it in the catalog. The contracts (plain
protocols, no base class needed):

- source kind: ``Cls(spec, context)`` with ``stream() -> Iterator[raw record]``
- stage: ``Cls(**params)`` with ``process(items) -> Iterator[items]`` (pure)
- sink: ``Cls(context, **params)`` with ``consume(rows)``; ``in_transaction = True``
  makes the pipeline call it inside the batch's PostgreSQL transaction.

Importing a module runs its code, so a name that comes from a job read from Redis is resolved with
the worker's :class:`PluginAllowlist` (``INGEST_PLUGINS``): a module outside it is refused before it
is imported.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError, Refused
from .suggest import did_you_mean

_DOTTED = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")
ALLOWLIST_VARIABLE = "INGEST_PLUGINS"


@dataclass(frozen=True)
class PluginAllowlist:
    """The modules (and their submodules) plugins may come from; ``()``: built-in names only."""

    modules: tuple[str, ...] = ()

    @classmethod
    def of(cls, text: str | None) -> PluginAllowlist:
        """From ``INGEST_PLUGINS``' value: module names separated by commas (None or "": none)."""
        return cls(tuple(m.strip() for m in (text or "").split(",") if m.strip()))

    def refusal(self, name: str, what: str) -> str | None:
        """Why the plugin ``name`` (``package.module:Class``) may not be imported, or None."""
        module = name.partition(":")[0]
        if any(module == m or module.startswith(m + ".") for m in self.modules):
            return None
        allowed = ", ".join(self.modules) or "unset: built-ins only"
        return f"{what} {name!r}: module {module} is not allowed by {ALLOWLIST_VARIABLE} ({allowed})"


def resolve(name: str, builtins: Mapping[str, Any], what: str, allow: PluginAllowlist | None = None) -> Any:
    """The class named ``name``: a key of ``builtins`` or ``package.module:ClassName``.

    ``allow``: the modules a plugin may come from, checked before anything is imported (what a
    job names); None only for names the process itself trusts (its own catalog file).
    Raises :class:`ConfigError` saying what is known when the name resolves to nothing, and
    :class:`Refused` when ``allow`` does not allow its module.
    """
    if name in builtins:
        return builtins[name]
    if not _DOTTED.fullmatch(name):
        hint = did_you_mean(name, builtins) or f"; known: {', '.join(builtins)}, or 'package.module:ClassName'"
        raise ConfigError(f"unknown {what} {name!r}{hint}")
    reason = None if allow is None else allow.refusal(name, what)
    if reason is not None:
        raise Refused(reason)
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
