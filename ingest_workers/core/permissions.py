"""What a job may make its worker do besides fetching over HTTP: import a plugin, open a local file,
read an environment variable.

A job in Redis names its source kind, stages and sinks, its CSV file or JSON-lines path, and the
variables its ``${VAR}`` references and ``*_env`` keys read; whoever can write to Redis can write a
job. So all three are granted by the worker's own configuration, never by the job: a plugin
(``package.module:Class``) only from the modules of ``INGEST_PLUGINS`` (and their submodules; built-in
names are always allowed), a local path only inside a directory of ``INGEST_FILES_DIR`` (after
following symbolic links), a variable never one of the worker's own settings and, when
``INGEST_SOURCE_VARS`` is set, only one it lists. Anything else is :class:`Refused`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .config import ENV_VARS, WORKER_OWN_VARIABLES, Settings
from .envrefs import variables
from .errors import Refused
from .models import SourceSpec
from .plugins import PluginAllowlist, split_entry

REMOTE_SCHEMES = ("http://", "https://")
HOW_TO_ALLOW = (f"allow what the worker's sources need in its environment, e.g. {ENV_VARS['source_vars']}=CRM_*,"
                "SHOP_TOKEN (names, or prefixes ending in '*')")


@dataclass(frozen=True)
class Permissions:
    plugin_modules: tuple[str, ...] = ()
    file_dirs: tuple[Path, ...] = ()
    source_vars: tuple[str, ...] = ()  # names, or prefixes ending in '*'; (): no variable

    @classmethod
    def of(cls, settings: Settings) -> Permissions:
        modules = [m.strip() for m in (settings.plugins or "").split(",") if m.strip()]
        dirs = [Path(d).resolve() for d in (settings.files_dir or "").split(os.pathsep) if d.strip()]
        names = tuple(n.strip() for n in (settings.source_vars or "").split(",") if n.strip())
        return cls(tuple(modules), tuple(dirs), names)

    @property
    def plugins(self) -> PluginAllowlist:
        """The modules a job's plugins may come from (``INGEST_PLUGINS``)."""
        return PluginAllowlist(self.plugin_modules)

    def check_variables(self, spec: SourceSpec) -> None:
        """Raise :class:`Refused` unless every variable ``spec`` refers to (``${VAR}``, ``*_env``)
        may be read by a job; checked before any is read."""
        for name in sorted(variables(spec.to_dict())):
            if name in WORKER_OWN_VARIABLES:
                raise Refused(f"source {spec.name}: it names {name}, one of the worker's own settings; a source "
                              "may name other variables only")
            if not any(name == allowed or (allowed.endswith("*") and name.startswith(allowed[:-1]))
                       for allowed in self.source_vars):
                allowed = ", ".join(self.source_vars) or "unset: no variables"
                raise Refused(f"source {spec.name}: variable {name} is not allowed by {ENV_VARS['source_vars']} "
                              f"({allowed}); {HOW_TO_ALLOW}")

    def check(self, spec: SourceSpec) -> None:
        """Raise :class:`Refused`, naming the source, the entry and the setting, unless every plugin
        and local path ``spec`` (resolved) names is allowed."""
        for what, name in _named_parts(spec):
            reason = self.plugins.refusal(name, what) if ":" in name else None
            if reason is not None:
                raise Refused(f"source {spec.name}: {reason}")
        for what, path in _local_paths(spec):
            real = Path(path).resolve()
            if not any(real.is_relative_to(directory) for directory in self.file_dirs):
                allowed = os.pathsep.join(map(str, self.file_dirs)) or "unset: no local files"
                raise Refused(f"source {spec.name}: {what} {path!r} is not inside "
                              f"{ENV_VARS['files_dir']} ({allowed})")


def _named_parts(spec: SourceSpec) -> Iterator[tuple[str, str]]:
    yield "source kind", spec.kind
    yield "pagination", spec.pagination
    if isinstance(spec.auth, dict) and isinstance(spec.auth.get("kind"), str):
        yield "auth kind", spec.auth["kind"]
    for entry in spec.stages or []:
        yield "stage", split_entry(entry, "stage")[0]
    for entry in spec.sinks:
        yield "sink", split_entry(entry, "sink")[0]
    declaration = spec.declaration or {}
    for key in ("stages", "prepare"):
        for entry in declaration.get(key) or []:
            yield "stage", split_entry(entry, "stage")[0]


def _local_paths(spec: SourceSpec) -> Iterator[tuple[str, str]]:
    if spec.kind == "csv" and not spec.url.startswith(REMOTE_SCHEMES):
        yield "csv file", spec.url
    for entry in spec.sinks:
        name, params = split_entry(entry, "sink")
        if name == "jsonl":
            yield "jsonl sink path", str(params.get("path", ""))
