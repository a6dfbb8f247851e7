"""What a job may make its worker do besides fetching over HTTP: import a plugin, open a local file.

A job in Redis names its source kind, stages and sinks, and its CSV file or JSON-lines path; whoever
can write to Redis can write a job. So both are granted by the worker's own configuration, never by
the job: a plugin (``package.module:Class``) only from the modules of ``INGEST_PLUGINS`` (and their
submodules; built-in names are always allowed), a local path only inside a directory of
``INGEST_FILES_DIR`` (after following symbolic links). Anything else is :class:`Refused`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .config import ENV_VARS, Settings
from .errors import Refused
from .models import SourceSpec
from .plugins import split_entry

REMOTE_SCHEMES = ("http://", "https://")


@dataclass(frozen=True)
class Permissions:
    plugin_modules: tuple[str, ...] = ()
    file_dirs: tuple[Path, ...] = ()

    @classmethod
    def of(cls, settings: Settings) -> Permissions:
        modules = [m.strip() for m in (settings.plugins or "").split(",") if m.strip()]
        dirs = [Path(d).resolve() for d in (settings.files_dir or "").split(os.pathsep) if d.strip()]
        return cls(tuple(modules), tuple(dirs))

    def check(self, spec: SourceSpec) -> None:
        """Raise :class:`Refused`, naming the source, the entry and the setting, unless every plugin
        and local path ``spec`` names is allowed."""
        for what, name in _named_parts(spec):
            module = name.partition(":")[0]
            if ":" in name and not any(module == m or module.startswith(m + ".") for m in self.plugin_modules):
                allowed = ", ".join(self.plugin_modules) or "unset: built-ins only"
                raise Refused(f"source {spec.name}: {what} {name!r}: module {module} is not allowed by "
                              f"{ENV_VARS['plugins']} ({allowed})")
        for what, path in _local_paths(spec):
            real = Path(path).resolve()
            if not any(real.is_relative_to(directory) for directory in self.file_dirs):
                allowed = os.pathsep.join(map(str, self.file_dirs)) or "unset: no local files"
                raise Refused(f"source {spec.name}: {what} {path!r} is not inside "
                              f"{ENV_VARS['files_dir']} ({allowed})")


def _named_parts(spec: SourceSpec) -> Iterator[tuple[str, str]]:
    yield "source kind", spec.kind
    for entry in spec.stages or []:
        yield "stage", split_entry(entry, "stage")[0]
    for entry in spec.sinks:
        yield "sink", split_entry(entry, "sink")[0]


def _local_paths(spec: SourceSpec) -> Iterator[tuple[str, str]]:
    if spec.kind == "csv" and not spec.url.startswith(REMOTE_SCHEMES):
        yield "csv file", spec.url
    for entry in spec.sinks:
        name, params = split_entry(entry, "sink")
        if name == "jsonl":
            yield "jsonl sink path", str(params.get("path", ""))
