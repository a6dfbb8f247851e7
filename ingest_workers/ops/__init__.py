"""What operators see: metrics, the job history, status, failed jobs, logs.

- :mod:`.metrics`: the declared Prometheus metrics, counted in one Redis hash.
- :mod:`.metrics_server`: ``/metrics`` and ``/healthz``.
- :mod:`.history`: one row per fetch job in PostgreSQL (``ingest_jobs``).
- :mod:`.watch`: wait for a run's jobs; its summary table and ``summary.json``.
- :mod:`.status`: per-source health from the history, queue depths and live workers.
- :mod:`.failed`: list, retry and purge failed jobs.
- :mod:`.logs`: text or JSON lines stamped with the job's source, run and id.

May import: ``core``, ``guards``.
"""
