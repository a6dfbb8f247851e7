"""Read and check the source catalog (TOML). Every error names the file and the key.

``${VAR}`` references are expanded here only in the keys that say what a source *is* and where its
jobs go (:data:`EXPANDED_HERE`: kind, dataset, queue, ...), its stages and its sinks' names. Every
other value keeps its references as written, and travels so in the job: the worker that runs it
expands them from its own environment (:mod:`.core.envrefs`), so a secret never reaches Redis and
the host that enqueues needs none.
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

from .core.envrefs import expand
from .core.errors import ConfigError
from .core.models import RENAMED_KEYS, SourceSpec, current_keys
from .datasets import BUILTIN, Dataset, parse_dataset, resolve_nested
from .load.sinks import sink_class
from .sources import source_class
from .sources.auth import check_auth
from .sources.http_json import CONCURRENT_PAGINATIONS, PAGINATIONS
from .stages.registry import make_stage

# Source names become metric label values, job ids and Redis keys: keep them tame.
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,62}")
QUEUE_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,100}")
# Known where the job is made (to check the entry and route its job): never secrets. So are stages.
EXPANDED_HERE = ("kind", "dataset", "queue", "pagination", "cursor_field")
_SPEC_FIELDS = {f.name: f for f in dataclasses.fields(SourceSpec)}
_TEXT_FIELDS = {"kind", "dataset", "url", "queue", "records_path", "pagination", "page_param", "page_size_param",
                "offset_param", "token_param", "next_token_path", "auth_env", "auth_header", "cursor_field",
                "since_param", "until_param", "next_url_path", "after_param", "after_field", "has_more_path"}
_TABLE_FIELDS = {"fields", "constants", "options", "params", "headers"}
_NOT_CATALOG_KEYS = {"name", "declaration"}  # SourceSpec fields the catalog fills itself


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

    def select(self, names: str) -> list[SourceSpec]:
        """Resolve ``all`` or a comma-separated list of source names."""
        if names.strip() == "all":
            return list(self.sources.values())
        wanted = [n.strip() for n in names.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in self.sources]
        if unknown or not wanted:
            raise ConfigError(
                f"unknown source {', '.join(unknown) or repr(names)}; known sources: {', '.join(self.sources)}"
            )
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
        raise ConfigError(f"{path}: unknown top-level key {unknown[0]!r}; expected [settings], [datasets.NAME] "
                          "and [sources.NAME]")
    sources_table = data.get("sources")
    if not isinstance(sources_table, dict) or not sources_table:
        raise ConfigError(f"{path}: no [sources.NAME] tables; the catalog needs at least one source")
    datasets = _parse_datasets(path, data.get("datasets", {}))
    sources = {name: _parse_source(path, name, entry, env, datasets) for name, entry in sources_table.items()}
    return Catalog(path=path, settings=dict(data.get("settings", {})), sources=sources, datasets=datasets)


def _parse_datasets(path: Path, table: Any) -> dict[str, Dataset]:
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [datasets] must hold tables [datasets.NAME]")
    datasets = {}
    for name, entry in table.items():
        if name in BUILTIN:
            raise ConfigError(f"{path}: [datasets.{name}]: {name!r} is a built-in dataset; declare yours under "
                              "another name")
        datasets[name] = dataset = parse_dataset(name, entry, f"{path}: ")
        for key in ("stages", "prepare"):
            for stage in getattr(dataset, key) or ():
                try:
                    make_stage(stage)
                except ConfigError as exc:
                    raise ConfigError(f"{path}: [datasets.{name}] key {key!r}: {exc}") from None
    datasets = resolve_nested(datasets, f"{path}: ")  # nested ones travel in their parent's declaration
    tables: dict[str, str] = {BUILTIN[n].table: n for n in BUILTIN}
    for name, dataset in datasets.items():
        if dataset.table in tables:
            raise ConfigError(f"{path}: [datasets.{name}] key 'table': table {dataset.table!r} is dataset "
                              f"{tables[dataset.table]!r}'s already")
        tables[dataset.table] = name
    return datasets


def _parse_source(path: Path, name: str, entry: Any, env: Mapping[str, str],
                  datasets: Mapping[str, Dataset] | None = None) -> SourceSpec:
    where = f"{path}: [sources.{name}]"
    if not NAME_PATTERN.fullmatch(name):
        raise ConfigError(f"{where}: a source name must be lowercase letters, digits and '_', starting with a letter")
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: must be a table")
    known_keys = set(_SPEC_FIELDS) - _NOT_CATALOG_KEYS
    unknown = sorted(set(entry) - known_keys - set(RENAMED_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; known keys: {', '.join(sorted(known_keys))}")
    entry, dataset_key = _renamed(where, entry)
    for key in ("kind", "dataset"):
        if key not in entry:
            raise ConfigError(f"{where}: missing required key {key!r}")
    values = {key: _expand_here(where, key, value, env) for key, value in entry.items()}
    for key, value in values.items():
        if key in _TEXT_FIELDS and not isinstance(value, str):
            raise ConfigError(f"{where} key {key!r}: expected text, got {value!r}")
        if key in _TABLE_FIELDS and not isinstance(value, dict):
            raise ConfigError(f"{where} key {key!r}: expected a table, got {value!r}")
    declared = (datasets or {}).get(values["dataset"]) if isinstance(values["dataset"], str) else None
    _check_parts(where, values, declared, dataset_key)
    _check_request(where, values)
    if declared is not None:
        values["declaration"] = declared.to_dict()
    page_size = values.get("page_size", SourceSpec.page_size)
    if not isinstance(page_size, int) or isinstance(page_size, bool) or page_size <= 0:
        raise ConfigError(f"{where} key 'page_size': expected a whole number above 0, got {page_size!r}")
    _check_concurrency(where, values)
    queue = values.get("queue")
    if queue is not None and not QUEUE_PATTERN.fullmatch(queue):
        raise ConfigError(f"{where} key 'queue': use letters, digits, '-', '_' or '.', got {queue!r}")
    interval = values.get("interval_seconds")
    if interval is not None and (not isinstance(interval, int) or isinstance(interval, bool) or interval <= 0):
        raise ConfigError(f"{where} key 'interval_seconds': expected a whole number of seconds above 0, "
                          f"got {interval!r}")
    if not all(isinstance(v, str) for v in values.get("fields", {}).values()):
        raise ConfigError(f"{where} key 'fields': expected a table of unified field = \"dotted.path\"")
    values["name"] = name
    spec = SourceSpec(**values)
    try:
        json.dumps(spec.to_dict())  # the spec travels in the RQ job as JSON
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: a value cannot travel as JSON ({exc}); quote dates and times") from None
    return spec


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


def _check_parts(where: str, values: dict[str, Any], declared: Dataset | None = None,
                 dataset_key: str = "dataset") -> None:
    """The kind, dataset, pagination, stages and sinks an entry names must exist."""
    try:
        source_class(values["kind"])
    except ConfigError as exc:
        raise ConfigError(f"{where} key 'kind': {exc}") from None
    if values["kind"] in ("http_json", "csv") and not values.get("url"):
        raise ConfigError(f"{where}: missing required key 'url'")
    dataset = declared or BUILTIN.get(values["dataset"])
    if dataset is None:
        raise ConfigError(f"{where} key {dataset_key!r}: unknown dataset {values['dataset']!r}; declare it as "
                          f"[datasets.{values['dataset']}] or use a built-in one: {', '.join(BUILTIN)}")
    if dataset.nested_in is not None:
        raise ConfigError(f"{where} key {dataset_key!r}: dataset {dataset.name!r} is nested in "
                          f"{dataset.nested_in!r}: its rows come with the records of {dataset.nested_in!r}'s sources")
    if values.get("pagination", "page") not in PAGINATIONS:
        raise ConfigError(f"{where} key 'pagination': expected one of {', '.join(PAGINATIONS)}")
    cursor_field = values.get("cursor_field")
    if cursor_field is not None and cursor_field not in dataset.column_names:
        raise ConfigError(f"{where} key 'cursor_field': {cursor_field!r} is not a column of {dataset.name}; "
                          f"known: {', '.join(dataset.column_names)}")
    for key, check in (("stages", make_stage), ("sinks", sink_class)):
        entries = values.get(key, [])
        if not isinstance(entries, list):
            raise ConfigError(f"{where} key {key!r}: expected a list of names or tables")
        for entry in entries:
            try:
                check(entry)
            except ConfigError as exc:
                raise ConfigError(f"{where} key {key!r}: {exc}") from None


def _check_request(where: str, values: dict[str, Any]) -> None:
    """Static headers are text, static params scalars; ``auth`` names variables, never secrets."""
    for name, value in values.get("headers", {}).items():
        if not isinstance(value, str):
            raise ConfigError(f"{where} key 'headers.{name}': expected text, got {value!r}")
    for name, value in values.get("params", {}).items():
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{where} key 'params.{name}': expected text, a number or a boolean, got {value!r}")
    if "auth" in values:
        check_auth(where, values["auth"], values)


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
