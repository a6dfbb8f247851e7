"""A module the trust tests name in jobs: importing it appends the id of the RQ job that imported it
("-" outside a job) to the file TRUST_MARKER names, so a test can tell which job imported it."""

import os

from rq import get_current_job

_job = get_current_job()
with open(os.environ["TRUST_MARKER"], "a", encoding="utf-8") as _out:
    _out.write(f"{_job.id if _job else '-'}\n")


class Anything:
    """Accepts whatever it is given: a source kind, a stage or a sink, as a job may use it."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass
