"""The job's catalog entry as this worker runs it: its permissions checked, its references expanded."""

from __future__ import annotations

from ..core.envrefs import resolve_entry
from ..core.models import SourceSpec
from ..core.permissions import Permissions
from .resources import Resources


def resolved(spec: SourceSpec, res: Resources) -> SourceSpec:
    """The job's entry with its ``${VAR}`` references expanded from this worker's environment
    (their values, and those of the ``*_env`` variables it names, hidden from every message), once
    the worker's permissions allow the variables, plugins and local files it names (:class:`Refused`
    otherwise)."""
    permissions = Permissions.of(res.settings)
    permissions.check_variables(spec)
    spec = SourceSpec.from_dict(resolve_entry(spec.to_dict(), res.env, f"source {spec.name}"))
    permissions.check(spec)
    return spec
