import logging
import traceback

import pytest

from ingest_workers.core.envrefs import resolve_entry
from ingest_workers.core.errors import PermanentError
from ingest_workers.core.redact import mask_url, redact, redact_exception
from ingest_workers.ops.logs import redact_log_records


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://u:secret@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("redis://:secret@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("postgresql://u:p@ss@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u@h/db?password=secret&sslmode=disable", "postgresql://u@h/db?password=***&sslmode=disable"),
        ("host=h password='se cret' dbname=db", "host=h password=*** dbname=db"),
        ("postgresql://u@h:5432/db", "postgresql://u@h:5432/db"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("http://[::1", "http://[::1"),
        ("", ""),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_values_a_job_resolved_are_shown_as_their_references(caplog: pytest.LogCaptureFixture) -> None:
    env = {"API_TOKEN": "tok-5f1e2d", "MOCK_URL": "http://127.0.0.1:9", "PAGES": "20000", "SHORT": "ab"}
    entry = {"name": "s", "url": "${MOCK_URL}/bot${API_TOKEN}/x", "auth": {"kind": "bearer", "token_env": "API_TOKEN"},
             "options": {"records": "${PAGES}", "flag": "${SHORT}"}, "fields": {"a": "${UNSET:-b}"}}
    resolved = resolve_entry(entry, env, "source s")
    assert resolved["url"] == "http://127.0.0.1:9/bottok-5f1e2d/x" and resolved["fields"] == {"a": "b"}
    assert entry["url"] == "${MOCK_URL}/bot${API_TOKEN}/x"  # the job's own copy is never changed
    assert redact("GET http://127.0.0.1:9/bottok-5f1e2d/x: HTTP 404, 20000 records, ab") \
        == "GET ${MOCK_URL}/bot${API_TOKEN}/x: HTTP 404, 20000 records, ab"  # numbers and tiny values stay

    try:
        try:
            raise OSError(f"connect to {env['API_TOKEN']} failed")  # (the traceback shows these source lines)
        except OSError as exc:
            raise PermanentError(f"GET {resolved['url']}: HTTP 404") from exc
    except PermanentError as exc:
        redact_exception(exc)
        text = "".join(traceback.format_exception(exc))
    assert "tok-5f1e2d" not in text and "${API_TOKEN}" in text

    redact_log_records()
    logging.getLogger("test").warning("token %s, redis %s", "tok-5f1e2d", "redis://u:pw-9@h/0")
    assert caplog.messages[-1] == "token ${API_TOKEN}, redis redis://u:***@h/0"


