"""Child sources and partitions in a catalog (issue 24): the checks of their keys, and the tree.

A source with ``parent = "gh_issues"`` runs once per record of its parent source, which carries
it in ``children`` (filled here, recursively: grandchildren are allowed). A source with
``partitions`` runs once per partition value (per combination, with several keys). Their
requests name what they run for as ``{parent.PATH}`` / ``{partition.NAME}`` (:mod:`.templates`),
their ``fields`` as ``"parent.PATH"`` / ``"partition.NAME"``.

:func:`check_entry` checks one entry (a catalog's or a job's), :func:`check_family` the parents
of a whole catalog, :func:`with_children` fills ``children``. Every error is a
:class:`ConfigError` of one line naming the key (the caller prefixes where it is).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterator, Mapping
from typing import Any

from ..core.errors import ConfigError
from ..core.models import SourceSpec
from .http import STATUS_ACTIONS
from .templates import placeholders

FAN_OUT_MODES = ("all", "changed")  # all parent records that passed their checks | those loaded or updated
MAX_PARENTS_PER_JOB = 10_000
MAX_PARTITIONS = 100_000  # combinations of one source's partition values
MAX_GENERATIONS = 8  # parent -> child -> grandchild ...: deeper is a mistake, not a design
PARTITION_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
STATUS = re.compile(r"[45][0-9][0-9]")


def check_entry(where: str, values: Mapping[str, Any]) -> None:
    """The fan-out keys of one source entry (``values``: its keys as given) and the placeholders
    and field paths that depend on them."""
    parent, partitions = values.get("parent"), values.get("partitions", {})
    if parent is not None and not isinstance(parent, str):
        raise ConfigError(f"{where} key 'parent': expected the name of another source, got {parent!r}")
    _check_partitions(where, partitions)
    if parent is not None and partitions:
        raise ConfigError(f"{where} key 'partitions': a source runs for the records of a parent or for "
                          "partitions, not both")
    if "fan_out" in values and values["fan_out"] not in FAN_OUT_MODES:
        raise ConfigError(f"{where} key 'fan_out': expected one of {', '.join(FAN_OUT_MODES)}, "
                          f"got {values['fan_out']!r}")
    if values.get("fan_out", "all") != "all" and parent is None:
        raise ConfigError(f"{where} key 'fan_out': only a source with a 'parent' fans out from its records")
    per_job = values.get("parents_per_job", SourceSpec.parents_per_job)
    if not isinstance(per_job, int) or isinstance(per_job, bool) or not 0 < per_job <= MAX_PARENTS_PER_JOB:
        raise ConfigError(f"{where} key 'parents_per_job': expected a whole number from 1 to "
                          f"{MAX_PARENTS_PER_JOB}, got {per_job!r}")
    _check_on_status(where, values.get("on_status", {}), values.get("kind"))
    for key, text in _templated(values):
        _check_placeholders(where, key, text, parent, partitions)
    for field, path in values.get("fields", {}).items():
        if isinstance(path, str):
            _check_field_path(where, f"fields.{field}", path, parent, partitions)


def check_family(sources: Mapping[str, SourceSpec], where: Mapping[str, str]) -> None:
    """Every ``parent`` names a source of the catalog, and no source is its own ancestor (the
    cycle is named); ``where[name]`` prefixes the errors about source ``name``."""
    for name, spec in sources.items():
        if spec.parent is not None and spec.parent not in sources:
            raise ConfigError(f"{where[name]} key 'parent': no source {spec.parent!r} in this catalog; "
                              f"known sources: {', '.join(sorted(sources))}")
    for name in sources:
        chain = [name]
        while (parent := sources[chain[-1]].parent) is not None:
            if parent in chain:
                cycle = chain[chain.index(parent):] + [parent]
                raise ConfigError(f"{where[name]} key 'parent': a cycle of parents: {' -> '.join(cycle)}")
            chain.append(parent)
        if len(chain) > MAX_GENERATIONS + 1:
            raise ConfigError(f"{where[name]} key 'parent': {len(chain) - 1} generations of parents "
                              f"({' -> '.join(chain)}); at most {MAX_GENERATIONS}")


def with_children(sources: Mapping[str, SourceSpec]) -> dict[str, SourceSpec]:
    """``sources`` with each one's ``children``: the full spec dicts of the sources whose ``parent``
    it is, each with its own children. Call after :func:`check_family` (no cycles)."""
    built: dict[str, SourceSpec] = {}

    def build(name: str) -> SourceSpec:
        if name not in built:
            children = [build(child).to_dict() for child, spec in sources.items() if spec.parent == name]
            built[name] = dataclasses.replace(sources[name], children=children)
        return built[name]

    return {name: build(name) for name in sources}


def partition_count(partitions: Mapping[str, list[Any]]) -> int:
    """How many combinations of values ``partitions`` makes (1 without partitions)."""
    return math.prod(len(values) for values in partitions.values())


def _check_partitions(where: str, partitions: Any) -> None:
    if not isinstance(partitions, dict):
        raise ConfigError(f"{where} key 'partitions': expected a table of NAME = [values], got {partitions!r}")
    for name, values in partitions.items():
        if not PARTITION_KEY.fullmatch(name):
            raise ConfigError(f"{where} key 'partitions.{name}': a partition name is letters, digits and '_', "
                              "starting with a letter")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where} key 'partitions.{name}': expected a list of values, at least one, "
                              f"got {values!r}")
        for value in values:
            if isinstance(value, (dict, list)) or value is None or value == "":
                raise ConfigError(f"{where} key 'partitions.{name}': expected text or numbers, got {value!r}")
        if len({repr(v) for v in values}) != len(values):
            raise ConfigError(f"{where} key 'partitions.{name}': a value is listed twice")
    if partition_count(partitions) > MAX_PARTITIONS:
        raise ConfigError(f"{where} key 'partitions': {partition_count(partitions)} combinations; at most "
                          f"{MAX_PARTITIONS}")


def _check_on_status(where: str, on_status: Any, kind: Any) -> None:
    if not isinstance(on_status, dict):
        raise ConfigError(f"{where} key 'on_status': expected a table of status = \"skip\" | \"retry\" | "
                          f"\"fail\", got {on_status!r}")
    for status, action in on_status.items():
        if not (isinstance(status, str) and STATUS.fullmatch(status)):
            raise ConfigError(f"{where} key 'on_status.{status}': expected an HTTP status from 400 to 599")
        if action not in STATUS_ACTIONS:
            raise ConfigError(f"{where} key 'on_status.{status}': expected one of {', '.join(STATUS_ACTIONS)}, "
                              f"got {action!r}")
        if action == "skip" and kind == "csv":
            raise ConfigError(f"{where} key 'on_status.{status}': a csv file is one request; skipping it would "
                              "load nothing without a word (use \"fail\")")


def _templated(values: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(key, text) of each value a placeholder may fill: url, params' and headers' values."""
    if isinstance(values.get("url"), str):
        yield "url", values["url"]
    for table in ("params", "headers"):
        for name, value in (values.get(table) or {}).items():
            if isinstance(value, str):
                yield f"{table}.{name}", value


def _check_placeholders(where: str, key: str, text: str, parent: str | None,
                        partitions: Mapping[str, Any]) -> None:
    for root, path in placeholders(text):
        if not path:
            raise ConfigError(f"{where} key {key!r}: {{{root}}} names no value; write {{{root}.PATH}}")
        _check_scoped(where, key, f"{{{root}.{path}}}", root, path, parent, partitions)


def _check_field_path(where: str, key: str, path: str, parent: str | None, partitions: Mapping[str, Any]) -> None:
    root, _, rest = path.partition(".")
    if root in ("parent", "partition") and rest:
        _check_scoped(where, key, repr(path), root, rest, parent, partitions)


def _check_scoped(where: str, key: str, shown: str, root: str, path: str, parent: str | None,
                  partitions: Mapping[str, Any]) -> None:
    """A ``parent`` path needs a parent; a ``partition`` name must be one of the partitions' keys."""
    if root == "parent" and parent is None:
        raise ConfigError(f"{where} key {key!r}: {shown} reads a parent record, but the source has no 'parent'")
    if root == "partition" and path not in partitions:
        known = f"its partitions: {', '.join(partitions)}" if partitions else "the source has no 'partitions'"
        raise ConfigError(f"{where} key {key!r}: {shown} names no partition ({known})")
