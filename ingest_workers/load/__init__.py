"""Writing to PostgreSQL exactly once, and Redis as the filter in front of it.

- :mod:`.loader`: one transaction per batch (COPY, or staging and ``ON CONFLICT``).
- :mod:`.nested`: the items of nested datasets, written in their parents' transaction.
- :mod:`.lifecycle`: the write modes beyond append and merge, one hook in the loader: deletions
  (:mod:`.deletions`), history (:mod:`.history_write`, :mod:`.history_items`, :mod:`.history_schema`)
  and replace (:mod:`.replace_rows` per batch, :mod:`.replace_switch` once per source and run).
- :mod:`.dedup`: the keys already committed, per source, in Redis.
- :mod:`.cursors`: each source's high-water mark, advanced in the batch's own transaction.
- :mod:`.sinks`: where a batch's new rows also go (JSON lines, console, the alerts table).
- :mod:`.pgretry`: ride out a PostgreSQL outage, one unit of work at a time.
- :mod:`.migrate` and ``migrations/``: the schema, applied once per version under an advisory lock.

May import: ``core``, ``datasets``.
"""
