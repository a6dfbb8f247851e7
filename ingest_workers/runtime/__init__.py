"""Running jobs on RQ: what goes on the queue, and the processes that take it off.

- :mod:`.jobs`: the RQ entry points (their dotted paths are stored with every queued job).
- :mod:`.worker`: ``IngestWorker`` and ``IngestQueue``, the classes ``rq worker`` runs (only this
  package's jobs).
- :mod:`.workerpool`: start, watch and stop local ``rq worker`` processes.
- :mod:`.producer`: enqueue runs and backfill windows with deterministic job ids.
- :mod:`.scheduler`: enqueue each source at its interval.
- :mod:`.localrun`: ``ingest run``'s inline mode and time limit.
- :mod:`.resources`: a job's clients and redactor, served to it by its worker, rebuilt after a fork.

May import: everything below it (``pipeline``, ``ops``, ``load``, ``guards``, ``sources``, ``stages``,
``datasets``, ``core``), never ``cli`` or ``testing``.
"""
