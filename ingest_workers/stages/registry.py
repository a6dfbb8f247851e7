"""The stages a catalog entry can name, and the full stage list of a source."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from ..core.errors import ConfigError
from ..core.models import Lineage, SourceSpec
from ..core.plugins import PluginAllowlist, resolve, split_entry
from ..datasets import Dataset
from .base import Stage, default_stages
from .compiled import compiled_stages
from .series import MovingAverage, Normalise, ThresholdFilter
from .text import PumpSignal, Sentiment, TickerFromCashtag

STAGES: Mapping[str, Any] = MappingProxyType({cls.name: cls for cls in (
    ThresholdFilter, Normalise, MovingAverage, Sentiment, PumpSignal, TickerFromCashtag)})


def make_stage(entry: Any, allow: PluginAllowlist | None = None) -> Stage:
    """Build one stage from a catalog entry (``"sentiment"`` or ``{name = "threshold", maximum = 5}``);
    a plugin's module must be one ``allow`` allows (see :func:`.resolve`)."""
    name, params = split_entry(entry, "stage")
    cls = resolve(name, STAGES, "stage", allow)
    try:
        return cls(**params)
    except TypeError as exc:
        raise ConfigError(f"stage {name}: {exc}") from None


def source_stages(spec: SourceSpec, dataset: Dataset, lineage: Lineage,
                  scope: Mapping[str, Any] | None = None, compiled: bool = False) -> list[Stage]:
    """map -> the dataset's prepare stages -> validate -> the entry's stages (or the dataset's) -> enrich.

    ``scope``: the source context's (``SourceContext.scope()``: its parent record, its partition),
    which the ``parent.``/``partition.`` paths of ``spec.fields`` read. ``compiled``: map, validate (and
    enrich, when no stage runs between) as one :class:`CompiledRecordPath`, which yields the same items;
    a dataset with ``prepare`` stages keeps the stage objects."""
    extra = spec.stages if spec.stages is not None else list(dataset.default_stages)
    stages = default_stages(spec.fields, dataset, lineage, [make_stage(e) for e in extra], spec.constants,
                            [make_stage(e) for e in dataset.prepare], scope)
    if compiled:
        return compiled_stages(stages, dataset, spec.fields, spec.constants, lineage, scope) or stages
    return stages
