"""What `ingest failed list` shows as a job's error."""

from __future__ import annotations

from ingest_workers.ops.failed import exception_line

TRACEBACK = '''Traceback (most recent call last):
  File "/app/ingest_workers/ops/history.py", line 30, in started
    cur.execute(statement, params)
    ~~~~~~~~~~~^^^^^^^^^^^^^^^^^^^
psycopg2.errors.UndefinedTable: relation "ingest_jobs" does not exist
LINE 1: INSERT INTO ingest_jobs (job_id, run_id, source, status) VAL...
                    ^
'''


def test_the_error_is_the_exception_line_not_the_caret_under_a_query() -> None:
    assert exception_line(TRACEBACK) == 'psycopg2.errors.UndefinedTable: relation "ingest_jobs" does not exist'


def test_text_that_is_no_traceback_gives_its_last_line() -> None:
    assert exception_line("PermanentError: HTTP 404\n") == "PermanentError: HTTP 404"
    assert exception_line("") == ""
