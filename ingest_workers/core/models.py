"""Plain data passed between the pieces: no I/O, no imports from the package."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SourceSpec:
    """One catalog entry. It travels inside the RQ job (as JSON), so a worker on
    another host needs no copy of the catalog file. It holds no secrets: only
    ``${VAR}`` references and the *names* of the variables that hold tokens, which
    the worker resolves from its own environment (``core.envrefs``)."""

    name: str
    kind: str  # a built-in kind (http_json, csv, synthetic) or a plugin "package.module:ClassName"
    dataset: str  # the dataset the records land in: a built-in one or one its catalog declares
    url: str = ""  # http_json: the API; csv: a file path or an http(s) URL; synthetic: unused
    records_path: str = "items"  # dotted path to the list of records in a page ("" for a top-level list)
    pagination: str = "page"  # page | offset | cursor | link | next_url | after_last | none | "package.module:Class"
    page_param: str = "page"
    page_size_param: str = "per_page"  # also the "limit" of offset pagination
    page_size: int = 500
    concurrency: int | None = None  # page/offset paging: requests in flight per job; None: the settings'
    max_pages: int = 10_000  # a job fetching more pages than this fails (a paginator that never ends)
    offset_param: str = "offset"
    token_param: str = "cursor"  # cursor pagination: the query parameter carrying the token
    next_token_path: str = "next_cursor"  # cursor pagination: where the next token is in the body
    fields: dict[str, str] = field(default_factory=dict)  # unified field -> dotted path in the record
    constants: dict[str, Any] = field(default_factory=dict)  # unified field -> fixed value (e.g. platform)
    auth_env: str | None = None  # environment variable holding the auth header's value
    auth_header: str = "Authorization"
    # {kind = "bearer" | "basic" | "api_key" | "oauth2_..." | "package.module:Class", ...}: names
    # environment variables, never holds a secret
    auth: dict[str, Any] | None = None
    params: dict[str, Any] = field(default_factory=dict)  # static query parameters of every request
    method: str = "GET"  # http_json: GET or POST
    body: Any = None  # http_json: the JSON body of every request (a table); its placeholders are filled per request
    headers: dict[str, str] = field(default_factory=dict)  # static headers of every request
    next_url_path: str = "next"  # next_url pagination: where the next page's URL is in the body
    after_param: str = "starting_after"  # after_last pagination: the parameter carrying the last key
    after_field: str = "id"  # after_last pagination: dotted path of that key in the last record
    has_more_path: str = "has_more"  # after_last pagination: a boolean in the body; "" for "a full page"
    cursor_field: str | None = None  # row field whose highest value is the source's high-water mark
    since_param: str | None = None  # query parameter that asks for records at or after a mark
    until_param: str | None = None  # query parameter that asks for records before a moment (backfill windows)
    initial_value: Any = None  # the mark of the first run (no mark yet); None: the first run reads everything
    lookback: str | None = None  # "15m": ask from (mark - lookback), for records that arrive late
    window: str | None = None  # "7d": a run steps from the mark to its start in windows at most this long
    max_records_per_window: int | None = None  # a window serving this many is capped: split in two, read again
    time_format: str | None = None  # {since}/{until} as "iso" (the default), "unix", "unix_ms" or a strftime pattern
    stages: list[Any] | None = None  # stage names or {name = ..., params}; None: the dataset's defaults
    sinks: list[Any] = field(default_factory=list)  # sinks besides PostgreSQL: names or {name = ..., params}
    options: dict[str, Any] = field(default_factory=dict)  # settings of the source kind (csv, synthetic, plugins)
    interval_seconds: int | None = None  # `ingest schedule` runs the source this often; None: never
    schedule: str | None = None  # `ingest schedule` runs the source at these times (five-field cron, UTC)
    error_path: str = ""  # dotted path where a 200's body holding a value is a failed request ("": none)
    rate_limit: float = 5.0  # requests/second to this source, all workers together (0: unlimited)
    queue: str | None = None  # an RQ queue of its own (e.g. for heavy sources); None: the settings' queue
    # HTTP status (as text, "404") -> "skip" | "retry" | "fail": what an answer with that status means
    on_status: dict[str, str] = field(default_factory=dict)
    parent: str | None = None  # fan-out: the catalog source whose records this source is run for
    parents_per_job: int = 20  # fan-out: parent records per child job
    fan_out: str = "all"  # fan-out: "all" parent records that passed their checks | "changed" (loaded or updated)
    # partition key -> its values: one request chain per value (per combination, with several keys)
    partitions: dict[str, list[Any]] = field(default_factory=dict)
    # The dataset's declaration when the catalog declares it ([datasets.NAME]); None: a built-in dataset.
    declaration: dict[str, Any] | None = None
    # Filled by the catalog, like ``declaration``: the full spec dicts of the sources whose ``parent``
    # is this source (each with its own ``children``): they run through this source's jobs.
    children: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The spec as its job carries it (JSON). Keys still at their default among
        :data:`LATER_KEYS` are left out: the job of a source without them stays readable by
        workers that predate them."""
        data = dataclasses.asdict(self)
        if data["declaration"] is None:  # a built-in dataset: the job stays readable by workers of 0.1
            del data["declaration"]
        for spec_field in dataclasses.fields(self):
            if spec_field.name in LATER_KEYS and data[spec_field.name] == _default(spec_field):
                del data[spec_field.name]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SourceSpec:
        """The spec of :meth:`to_dict`'s output (a job enqueued before a key was renamed still reads,
        :data:`RENAMED_KEYS`), unchecked: only for a spec this process checked already. A job read
        from Redis is read by ``ingest_workers.catalog.parse_job``."""
        return cls(**current_keys(data))


def _default(spec_field: dataclasses.Field[Any]) -> Any:
    if spec_field.default_factory is not dataclasses.MISSING:
        return spec_field.default_factory()
    return spec_field.default


# Keys added with the fan-out (issue 24), and their defaults: left out of a job that does not use them.
LATER_KEYS = ("on_status", "parent", "parents_per_job", "fan_out", "partitions", "children")

# Keys renamed since a catalog was written or a job enqueued: older name -> name. The catalog and
# the job both accept the older name (giving both is an error), and nothing else uses it.
RENAMED_KEYS = {"domain": "dataset"}  # alias: queued jobs and catalogs written before the rename


def current_keys(entry: dict[str, Any]) -> dict[str, Any]:
    """``entry`` with each older key name of :data:`RENAMED_KEYS` replaced by its name; raises
    :class:`ValueError` naming both when ``entry`` gives both."""
    entry = dict(entry)
    for old, new in RENAMED_KEYS.items():
        if old in entry:
            if new in entry:
                raise ValueError(f"give {new!r} or {old!r} (its older name), not both")
            entry[new] = entry.pop(old)
    return entry


@dataclass(frozen=True)
class Window:
    """A backfill window: records at or after ``since`` and before ``until`` (ISO 8601, UTC)."""

    since: str
    until: str

    def to_list(self) -> list[str]:
        return [self.since, self.until]


@dataclass(frozen=True)
class Lineage:
    """Where a record came from; stamped on every loaded row."""

    source: str
    run_id: str
    job_id: str
    fetched_at: str  # ISO 8601, UTC


@dataclass(slots=True)
class Record:
    """A record on its way through the stages: the payload as served, and the row being built."""

    raw: Any
    row: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record a stage refused, with the reason; it goes to ``rejected_records``."""

    raw: Any
    reason: str
    stage: str


@dataclass(frozen=True, slots=True)
class LostPage(Rejected):
    """A page the source could not read (``where``: "page 3", "offset 500"): one row of
    ``rejected_records``, and a gap in what the job loaded, so a cursor must not pass it.
    ``page``: its page number in page paging (a resume point must not pass it either), else None."""

    where: str = ""
    page: int | None = None


@dataclass
class Counts:
    """What happened to the records of one job. ``fetched == rejected + duplicate + loaded + updated +
    deleted`` once the job has finished (``updated``: a merge dataset's stored rows a changed record
    replaced; ``deleted``: the stored rows a record flagged deleted removed or closed).

    That identity concerns the parent records only (the source's own records): the items of nested
    datasets are counted apart, in ``nested`` (dataset -> loaded, updated, deleted, rejected)."""

    fetched: int = 0
    rejected: int = 0
    duplicate: int = 0
    loaded: int = 0
    updated: int = 0
    deleted: int = 0
    # the pages the source could not read ("page 3: the body is not JSON"): the job is partial
    lost_pages: list[str] = field(default_factory=list)
    # requests whose status the source's ``on_status`` says to skip (a deleted parent's 404): no
    # records and no error. Requests, not records: outside ``fetched = rejected + ...``.
    skipped: int = 0
    nested: dict[str, dict[str, int]] = field(default_factory=dict)  # nested dataset -> NESTED_COUNT_NAMES

    def add(self, other: Counts) -> None:
        for name in COUNT_NAMES:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.skipped += other.skipped
        self.lost_pages.extend(other.lost_pages)
        self.add_nested(other.nested)

    def add_nested(self, nested: Mapping[str, Mapping[str, int]]) -> None:
        """Add the counts of some nested datasets' items (``{dataset: {loaded, ...}}``)."""
        for dataset, values in nested.items():
            mine = self.nested.setdefault(dataset, dict.fromkeys(NESTED_COUNT_NAMES, 0))
            for name, value in values.items():
                mine[name] = mine.get(name, 0) + int(value)

    def to_dict(self) -> dict[str, int]:
        """The record counts (:data:`COUNT_NAMES`); ``skipped``, a count of requests, is read apart."""
        return {name: getattr(self, name) for name in COUNT_NAMES}

    def unaccounted(self) -> int:
        """``fetched`` minus what its records became: 0 when every record was counted once (each
        count is taken where its outcome happens, so a counting bug shows here)."""
        return self.fetched - (self.rejected + self.duplicate + self.loaded + self.updated + self.deleted)


COUNT_NAMES = ("fetched", "rejected", "duplicate", "loaded", "updated", "deleted")  # of records; ``skipped``: requests
NESTED_COUNT_NAMES = ("loaded", "updated", "deleted", "rejected")  # per nested dataset: its items


class Reject(Exception):
    """Raised by a record check to refuse one record; the stage turns it into :class:`Rejected`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
