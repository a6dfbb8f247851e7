"""Protection kept in Redis, shared by every worker on every host.

- :mod:`.ratelimit`: one request rate per source for the whole cluster (GCRA in ``ratelimit.lua``).
- :mod:`.breaker`: a circuit breaker per source (``breaker_*.lua``); open means defer, never sleep.
- :mod:`.quarantine`: a job whose worker keeps dying without progress stops being retried.
- :mod:`.progress`: the first page a job has not wholly committed, to resume from.

May import: ``core``.
"""

import functools
from importlib import resources


@functools.cache
def lua_script(name: str) -> str:
    """The text of the Lua script ``name`` beside this package's modules (read once per process)."""
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
