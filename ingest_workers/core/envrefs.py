"""Environment references in a source's catalog entry: ``${VAR}``, ``${VAR:-default}``, and the
value of any key ending in ``_env`` (``auth_env = "SHOP_TOKEN"``: a variable *name*).

A job carries its entry as the catalog has it, references unexpanded, so no secret is written to
Redis; the worker that runs the job resolves them from its own environment (:func:`resolve_entry`)
and hides every value it read from every message the job writes (:func:`.redact.hide`, the job's
redactor).
Which variables an entry may name is the worker's decision (:mod:`.permissions`): whoever can write
a job could otherwise have the worker send its database password to any URL.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .errors import ConfigError
from .redact import hide

REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
ENV_NAME_SUFFIX = "_env"


def expand(value: Any, env: Mapping[str, str], where: str, key: str) -> Any:
    """``value`` (text, or tables and lists of them) with each ``${VAR}`` taken from ``env``; an
    empty or unset variable takes its default. :class:`ConfigError` names ``where``, ``key`` and the
    variable when one is unset and has no default."""
    if isinstance(value, dict):
        return {k: expand(v, env, where, f"{key}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v, env, where, key) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        var, default = match.group(1), match.group(2)
        if env.get(var):
            return env[var]
        if default is not None:
            return default
        raise ConfigError(f"{where} key {key!r}: environment variable {var} is not set and has no default")

    return REFERENCE.sub(substitute, value)


def variables(value: Any, key: str = "") -> set[str]:
    """Every variable ``value`` refers to: in ``${VAR}`` references, and named by a ``*_env`` key."""
    if isinstance(value, dict):
        return set().union(*(variables(v, k) for k, v in value.items()))
    if isinstance(value, list):
        return set().union(*(variables(v, key) for v in value))
    if not isinstance(value, str):
        return set()
    named = {value} if key.endswith(ENV_NAME_SUFFIX) and value else set()
    return named | {match.group(1) for match in REFERENCE.finditer(value)}


def resolve_entry(entry: dict[str, Any], env: Mapping[str, str], where: str) -> dict[str, Any]:
    """``entry`` with its references expanded from ``env``, every value it reads from ``env``
    hidden from the job's messages from now on (by the active redactor, :func:`.redact.hide`)."""
    names = variables(entry)
    hide({name: env[name] for name in names if env.get(name)})
    return {key: expand(value, env, where, key) for key, value in entry.items()}
