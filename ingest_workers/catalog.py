"""Read and check the source catalog (TOML). Every error names the file and the key.

``${VAR}`` references are expanded here only in the keys that say what a source *is* and where its
jobs go (:data:`EXPANDED_HERE`: kind, dataset, queue, ...), its stages and its sinks' names. Every
other value keeps its references as written, and travels so in the job: the worker that runs it
expands them from its own environment (:mod:`.core.envrefs`), so a secret never reaches Redis and
the host that enqueues needs none.

A source with ``parent`` runs through its parent's jobs, which carry it in ``children``
(:mod:`.sources.family`: the fan-out keys' checks, the parents' tree).
"""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .core.config import WORKER_OWN_VARIABLES
from .core.envrefs import expand, variables
from .core.errors import ConfigError, Refused
from .core.models import RENAMED_KEYS, SourceSpec, current_keys
from .core.plugins import PluginAllowlist
from .core.schedules import cron_problem
from .core.suggest import did_you_mean
from .datasets import BUILTIN, Dataset, parse_dataset, resolve_nested
from .load.sinks import sink_class
from .sources import source_class
from .sources.auth_kinds import check_auth
from .sources.family import MAX_GENERATIONS, check_entry, check_family, with_children
from .sources.paginators import CONCURRENT_PAGINATIONS, paginator_class
from .sources.request_keys import check_request_keys
from .stages.registry import make_stage

# Source names become metric label values, job ids and Redis keys: keep them tame.
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,62}")
QUEUE_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,100}")
# Known where the job is made (to check the entry and route its job): never secrets. So are stages.
EXPANDED_HERE = ("kind", "dataset", "queue", "pagination", "cursor_field")
_SPEC_FIELDS = {f.name: f for f in dataclasses.fields(SourceSpec)}
_TEXT_FIELDS = {"kind", "dataset", "url", "queue", "records_path", "pagination", "page_param", "page_size_param",
                "offset_param", "token_param", "next_token_path", "auth_env", "auth_header", "cursor_field",
                "since_param", "until_param", "next_url_path", "after_param", "after_field", "has_more_path",
                "parent", "fan_out", "schedule", "error_path", "lookback", "window", "time_format",
                "method"}
_TABLE_FIELDS = {"fields", "constants", "options", "params", "headers", "on_status", "partitions"}
_NOT_CATALOG_KEYS = {"name", "declaration", "children"}  # SourceSpec fields the catalog fills itself
_CATALOG_KEYS = set(_SPEC_FIELDS) - _NOT_CATALOG_KEYS
_JOB_KEYS = set(_SPEC_FIELDS) - {"name"}
_OPTIONAL_KEYS = {name for name, f in _SPEC_FIELDS.items() if f.default is None}


@dataclass(frozen=True)
class Catalog:
    path: Path
    settings: dict[str, Any]  # the [settings] table, checked later by config.load_settings
    sources: dict[str, SourceSpec]
    datasets: dict[str, Dataset] = dataclasses.field(default_factory=dict)  # declared here ([datasets.NAME])

    def used_datasets(self) -> dict[str, Dataset]:
        """Every dataset this catalog's sources load into (declared here or built in), by name."""
        return {**{s.dataset: BUILTIN[s.dataset] for s in self.sources.values() if s.dataset in BUILTIN},
                **self.datasets}

    def variables(self) -> tuple[str, ...]:
        """The environment variables this catalog's sources read on a worker (``${VAR}``, ``*_env``),
        sorted: what ``ingest workers``, ``run`` and ``demo`` allow their workers (INGEST_SOURCE_VARS)
        when the environment allows none itself. A worker's own settings are never among them."""
        names = set().union(*(variables(spec.to_dict()) for spec in self.sources.values()))
        return tuple(sorted(names - WORKER_OWN_VARIABLES))

    def select(self, names: str) -> list[SourceSpec]:
        """Resolve ``all`` or a comma-separated list of source names. ``all`` leaves out the child
        sources (each runs through its parent's jobs, once); named, a child source is returned
        (it then runs for the records its parent source has stored)."""
        if names.strip() == "all":
            return [spec for spec in self.sources.values() if spec.parent is None]
        wanted = [n.strip() for n in names.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in self.sources]
        if unknown or not wanted:
            hint = did_you_mean(unknown[0], self.sources) if len(unknown) == 1 else ""
            raise ConfigError(f"unknown source {', '.join(unknown) or repr(names)}"
                              f"{hint or '; known sources: ' + ', '.join(self.sources)}")
        return [self.sources[n] for n in dict.fromkeys(wanted)]


def load_catalog(path: Path, env: Mapping[str, str]) -> Catalog:
    """Parse ``path``; ``${VAR}`` and ``${VAR:-default}`` in the keys of :data:`EXPANDED_HERE` and in
    stage and sink names are taken from ``env``, the others are kept for the worker."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"catalog file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"catalog file {path} cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"catalog file {path} is not valid TOML: {exc}") from None

    unknown = sorted(set(data) - {"settings", "sources", "datasets"})
    if unknown:
        hint = did_you_mean(unknown[0], ("settings", "sources", "datasets")) or ";"
        raise ConfigError(f"{path}: unknown top-level key {unknown[0]!r}{hint} expected [settings], "
                          "[datasets.NAME] and [sources.NAME]")
    sources_table = data.get("sources")
    if not isinstance(sources_table, dict) or not sources_table:
        raise ConfigError(f"{path}: no [sources.NAME] tables; the catalog needs at least one source")
    datasets = _parse_datasets(path, data.get("datasets", {}))
    sources = {name: _parse_source(path, name, entry, env, datasets) for name, entry in sources_table.items()}
    check_family(sources, {name: f"{path}: [sources.{name}]" for name in sources})
    sources = with_children(sources)
    return Catalog(path=path, settings=dict(data.get("settings", {})), sources=sources, datasets=datasets)


def _parse_datasets(path: Path, table: Any) -> dict[str, Dataset]:
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [datasets] must hold tables [datasets.NAME]")
    datasets = {}
    for name, entry in table.items():
        _refuse_builtin(f"{path}: [datasets.{name}]", name)
        datasets[name] = dataset = parse_dataset(name, entry, f"{path}: ")
        check_declared(f"{path}: [datasets.{name}]", dataset, None)
    datasets = resolve_nested(datasets, f"{path}: ")  # nested ones travel in their parent's declaration
    tables: dict[str, str] = {}
    for name, dataset in datasets.items():
        if dataset.table in tables:
            raise ConfigError(f"{path}: [datasets.{name}] key 'table': table {dataset.table!r} is dataset "
                              f"{tables[dataset.table]!r}'s already")
        tables[dataset.table] = name
    return datasets


def check_declared(where: str, dataset: Dataset, allow: PluginAllowlist | None) -> None:
    """A declared dataset is no built-in one, has a table of its own and names stages that exist
    (from a job: whose modules ``allow`` allows, checked before any is imported)."""
    _refuse_builtin(where, dataset.name)
    builtin_tables = {BUILTIN[n].table: n for n in BUILTIN}
    if dataset.table in builtin_tables:
        raise ConfigError(f"{where} key 'table': table {dataset.table!r} is dataset "
                          f"{builtin_tables[dataset.table]!r}'s already")
    for key, stages in (("stages", dataset.stages or ()), ("prepare", dataset.prepare)):
        for stage in stages:
            try:
                make_stage(stage, allow)
            except (ConfigError, Refused) as exc:
                raise type(exc)(f"{where} key {key!r}: {exc}") from None


def _refuse_builtin(where: str, name: str) -> None:
    if name in BUILTIN:
        raise ConfigError(f"{where}: {name!r} is a built-in dataset; declare yours under another name")


def _parse_source(path: Path, name: str, entry: Any, env: Mapping[str, str],
                  datasets: Mapping[str, Dataset] | None = None) -> SourceSpec:
    where = f"{path}: [sources.{name}]"
    if not NAME_PATTERN.fullmatch(name):
        raise ConfigError(f"{where}: a source name must be lowercase letters, digits and '_', starting with a letter")
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: must be a table")
    _refuse_unknown_keys(where, entry, _CATALOG_KEYS)
    entry, dataset_key = _renamed(where, entry)
    for key in ("kind", "dataset"):
        if key not in entry:
            raise ConfigError(f"{where}: missing required key {key!r}")
    values = {key: _expand_here(where, key, value, env) for key, value in entry.items()}
    declared = (datasets or {}).get(values["dataset"]) if isinstance(values["dataset"], str) else None
    if declared is not None:
        values["declaration"] = declared.to_dict()
    return check_source(where, name, values, declared, dataset_key, None)


def parse_job(data: Any, allow: PluginAllowlist) -> SourceSpec:
    """The source a job read from Redis carries (:meth:`SourceSpec.to_dict`), checked by the catalog's
    own checks before anything in it is used: known keys of the right types, its dataset declaration
    (:func:`parse_dataset`), and every name that resolves to code allowed by ``allow`` before it is
    imported; its ``children`` (child sources) by this same parser, at every generation. Raises
    :class:`ConfigError` or :class:`Refused` naming the key."""
    return _parse_job(data, allow, 0)


def _parse_job(data: Any, allow: PluginAllowlist, generation: int) -> SourceSpec:
    if not isinstance(data, dict):
        raise ConfigError(f"the job's source is not a table but {type(data).__name__}")
    name = data.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ConfigError(f"the job's source name {str(name)[:80]!r} is not a source name (lowercase letters, "
                          "digits and '_', starting with a letter)")
    where = f"source {name}"
    # A job carries every key; None is an unset optional one (the catalog, in TOML, omits it).
    values = {k: v for k, v in data.items() if k != "name" and not (v is None and k in _OPTIONAL_KEYS)}
    _refuse_unknown_keys(where, values, _JOB_KEYS)
    values, dataset_key = _renamed(where, values)  # a job enqueued before the rename: its older key
    for key in ("kind", "dataset"):
        if not isinstance(values.get(key), str):
            raise ConfigError(f"{where} key {key!r}: expected text, got {values.get(key)!r}")
    declared = None
    if "declaration" in values:
        _refuse_builtin(f"{where} key 'declaration'", values["dataset"])
        declared = parse_dataset(values["dataset"], values["declaration"], f"{where} key 'declaration': ")
        check_declared(f"{where} key 'declaration'", declared, allow)
    if "children" in values:
        values["children"] = _parse_children(where, name, values["children"], allow, generation)
    return check_source(where, name, values, declared, dataset_key, allow)


def _parse_children(where: str, name: str, children: Any, allow: PluginAllowlist, generation: int) -> list[Any]:
    """A job's child sources, each parsed by :func:`parse_job`'s checks and naming ``name`` as its parent."""
    if not isinstance(children, list):
        raise ConfigError(f"{where} key 'children': expected a list of sources, got {type(children).__name__}")
    if children and generation >= MAX_GENERATIONS:
        raise ConfigError(f"{where} key 'children': more than {MAX_GENERATIONS} generations of child sources")
    parsed = []
    for child in children:
        try:
            spec = _parse_job(child, allow, generation + 1)
        except (ConfigError, Refused) as exc:
            raise type(exc)(f"{where} key 'children': {exc}") from None
        if spec.parent != name:
            raise ConfigError(f"{where} key 'children': child source {spec.name} names {spec.parent!r} as its "
                              f"parent, not {name!r}")
        parsed.append(spec.to_dict())
    return parsed


def check_source(where: str, name: str, values: dict[str, Any], declared: Dataset | None, dataset_key: str,
                 allow: PluginAllowlist | None) -> SourceSpec:
    """The spec of one source, every value checked (a catalog entry's, expanded, or a job's);
    ``allow``: see :func:`parse_job` (None: the names come from the process's own catalog)."""
    for key, value in values.items():
        if key in _TEXT_FIELDS and not isinstance(value, str):
            raise ConfigError(f"{where} key {key!r}: expected text, got {value!r}")
        if key in _TABLE_FIELDS and not isinstance(value, dict):
            raise ConfigError(f"{where} key {key!r}: expected a table, got {value!r}")
    _check_parts(where, values, declared, dataset_key, allow)
    _check_request(where, values, allow)
    check_request_keys(where, values)
    check_entry(where, values)
    _check_numbers(where, values)
    _check_concurrency(where, values)
    _check_schedule(where, values)
    queue = values.get("queue")
    if queue is not None and not QUEUE_PATTERN.fullmatch(queue):
        raise ConfigError(f"{where} key 'queue': use letters, digits, '-', '_' or '.', got {queue!r}")
    if not all(isinstance(v, str) for v in values.get("fields", {}).values()):
        raise ConfigError(f"{where} key 'fields': expected a table of unified field = \"dotted.path\"")
    spec = SourceSpec(name=name, **values)
    try:
        json.dumps(spec.to_dict())  # the spec travels in the RQ job as JSON
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: a value cannot travel as JSON ({exc}); quote dates and times") from None
    return spec


def _refuse_unknown_keys(where: str, entry: Mapping[str, Any], known: set[str]) -> None:
    """Refuse a key neither in ``known`` nor an older name (:data:`RENAMED_KEYS`), naming the nearest."""
    for key in sorted(set(entry) - known - set(RENAMED_KEYS), key=str):
        hint = did_you_mean(str(key), known) or f"; known keys: {', '.join(sorted(known))}"
        raise ConfigError(f"{where}: unknown key {str(key)[:80]!r}{hint}")


def _check_numbers(where: str, values: dict[str, Any]) -> None:
    for key, words in (("page_size", "a whole number above 0"), ("max_pages", "a whole number above 0"),
                       ("interval_seconds", "a whole number of seconds above 0")):
        value = values.get(key, 1)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"{where} key {key!r}: expected {words}, got {value!r}")
    rate = values.get("rate_limit", 0)
    if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not rate >= 0:
        raise ConfigError(f"{where} key 'rate_limit': expected requests per second, 0 or more (0: unlimited), "
                          f"got {rate!r}")


def _renamed(where: str, entry: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The entry with older key names replaced (:data:`RENAMED_KEYS`), and the key that named its
    dataset as the user wrote it (errors name that one)."""
    dataset_key = next((old for old, new in RENAMED_KEYS.items() if new == "dataset" and old in entry), "dataset")
    try:
        return current_keys(entry), dataset_key
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _check_concurrency(where: str, values: dict[str, Any]) -> None:
    concurrency = values.get("concurrency")
    if concurrency is None:
        return
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
        raise ConfigError(f"{where} key 'concurrency': expected a whole number of requests, 1 or more, "
                          f"got {concurrency!r}")
    pagination = values.get("pagination", "page")
    if values["kind"] in ("csv", "synthetic") or (values["kind"] == "http_json"
                                                  and pagination not in CONCURRENT_PAGINATIONS):
        raise ConfigError(f"{where} key 'concurrency': only page and offset pagination fetch pages concurrently "
                          f"(their addresses are known in advance); this source's pages come one after another")


def _check_schedule(where: str, values: dict[str, Any]) -> None:
    """``schedule`` is a five-field cron expression, and a source has it or ``interval_seconds``, not both."""
    if "schedule" not in values:
        return
    if "interval_seconds" in values:
        raise ConfigError(f"{where}: give 'schedule' (cron, UTC) or 'interval_seconds', not both")
    problem = cron_problem(values["schedule"])
    if problem:
        raise ConfigError(f"{where} key 'schedule': {problem}")


def _check_parts(where: str, values: dict[str, Any], declared: Dataset | None, dataset_key: str,
                 allow: PluginAllowlist | None) -> None:
    """The kind, dataset, pagination, fields, stages and sinks an entry names must exist (and, with
    ``allow``, their plugins' modules be allowed: checked before they are imported)."""
    try:
        source_class(values["kind"], allow)
    except (ConfigError, Refused) as exc:
        raise type(exc)(f"{where} key 'kind': {exc}") from None
    if values["kind"] in ("http_json", "csv") and not values.get("url"):
        raise ConfigError(f"{where}: missing required key 'url'")
    dataset = declared or BUILTIN.get(values["dataset"])
    if dataset is None:
        raise ConfigError(f"{where} key {dataset_key!r}: unknown dataset {values['dataset']!r}; declare it as "
                          f"[datasets.{values['dataset']}] or use a built-in one: {', '.join(BUILTIN)}"
                          f"{did_you_mean(values['dataset'], BUILTIN)}")
    if dataset.nested_in is not None:
        raise ConfigError(f"{where} key {dataset_key!r}: dataset {dataset.name!r} is nested in "
                          f"{dataset.nested_in!r}: its rows come with the records of {dataset.nested_in!r}'s sources")
    try:
        paginator_class(values.get("pagination", "page"), allow)
    except (ConfigError, Refused) as exc:
        raise type(exc)(f"{where} key 'pagination': {exc}") from None
    for key, column in [("cursor_field", values.get("cursor_field"))] + [
            (f"fields.{field}", field) for field in values.get("fields", {})]:
        if column is not None and column not in dataset.column_names:
            hint = did_you_mean(column, dataset.column_names) or f"; known: {', '.join(dataset.column_names)}"
            raise ConfigError(f"{where} key {key!r}: {column!r} is not a column of {dataset.name}{hint}")
    for key, check in (("stages", make_stage), ("sinks", sink_class)):
        entries = values.get(key, [])
        if not isinstance(entries, list):
            raise ConfigError(f"{where} key {key!r}: expected a list of names or tables")
        for entry in entries:
            try:
                check(entry, allow)
            except (ConfigError, Refused) as exc:
                raise type(exc)(f"{where} key {key!r}: {exc}") from None


def _check_request(where: str, values: dict[str, Any], allow: PluginAllowlist | None) -> None:
    """Static headers are text, static params scalars; ``auth`` names variables, never secrets."""
    for name, value in values.get("headers", {}).items():
        if not isinstance(value, str):
            raise ConfigError(f"{where} key 'headers.{name}': expected text, got {value!r}")
    for name, value in values.get("params", {}).items():
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{where} key 'params.{name}': expected text, a number or a boolean, got {value!r}")
    if "auth" in values:
        check_auth(where, values["auth"], values, allow)


def _expand_here(where: str, key: str, value: Any, env: Mapping[str, str]) -> Any:
    """The value as the job carries it: expanded when it is a key of :data:`EXPANDED_HERE`, a stage
    (pure, checked here by building it) or a sink's name; as written otherwise (a sink's settings
    may hold a webhook's token)."""
    if key in EXPANDED_HERE or key == "stages":
        return expand(value, env, where, key)
    if key == "sinks" and isinstance(value, list):
        return [expand(entry, env, where, key) if isinstance(entry, str)
                else {**entry, "name": expand(entry["name"], env, where, key)} if isinstance(entry, dict)
                and "name" in entry else entry for entry in value]
    return value
