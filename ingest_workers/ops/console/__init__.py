"""The operator's console of ``ingest metrics-server``: a page per source (its runs as a chart,
rejects that explain themselves, cursor, schedule) and a page of workers and queues.

Each page is rendered from exactly one JSON document (``/status/sources/NAME``,
``/status/workers``): :mod:`.documents` builds them, :mod:`.pages` turns them into HTML,
:mod:`.chart` draws the runs as SVG, :mod:`.queries` holds every SQL statement the console runs
and :mod:`.rq_state` every read of RQ's registries. Read-only: no page changes anything.
"""
