"""Record stages: pure steps a record goes through between its source and its table.

- :mod:`.base`: the frame (the ``Stage`` protocol, ``PerRecord``, ``compose``) and the stages every
  source runs (map its fields, validate into the dataset, stamp lineage).
- :mod:`.series`: stages over a time series (threshold filter, normalise, moving average).
- :mod:`.text`: stages over text (sentiment, pump signal).
- :mod:`.registry`: the stage names a catalog may use, and a source's full stage list.

Stages do no I/O: no network, clock or Redis. May import: ``core``, ``datasets``.
A plugin stage subclasses nothing: it has ``name`` and ``process(items)``; ``PerRecord``,
``Record``, ``Rejected`` and ``Reject`` are re-exported here for writing one.
"""

from ..core.models import Record, Reject, Rejected
from .base import Item, PerRecord, Stage, compose

__all__ = ["Item", "PerRecord", "Record", "Reject", "Rejected", "Stage", "compose"]
