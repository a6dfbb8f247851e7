"""RQ settings for ``rq worker --config ingest_workers.runtime.rq_config``: the Sentinel master
named by ``REDIS_SENTINELS`` and ``REDIS_SENTINEL_MASTER`` (password and database from
``REDIS_URL``), read from the worker's environment so no secret is in its argv.

RQ reads the UPPERCASE names of this module when it starts; this is the one place
besides the CLI and :mod:`ingest_workers.runtime.resources` that reads the environment.
"""

from __future__ import annotations

import os

from ..core.config import load_settings
from ..core.connections import rq_sentinel_settings

SENTINEL = rq_sentinel_settings(load_settings(env=os.environ))
