import contextvars
import logging
import threading
import traceback

import pytest

from ingest_workers.core.envrefs import resolve_entry
from ingest_workers.core.errors import PermanentError
from ingest_workers.core.redact import Redactor, hiding, mask_url, redact
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
    with hiding(Redactor()) as redactor:
        _check_values_are_shown_as_references(redactor, entry, env, caplog)
    assert redact("token tok-5f1e2d") == "token tok-5f1e2d"  # the job's redactor is gone with its block


def _check_values_are_shown_as_references(redactor: Redactor, entry: dict, env: dict[str, str],
                                          caplog: pytest.LogCaptureFixture) -> None:
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
        redactor.redact_exception(exc)
        text = "".join(traceback.format_exception(exc))
    assert "tok-5f1e2d" not in text and "${API_TOKEN}" in text

    redact_log_records()
    logging.getLogger("test").warning("token %s, redis %s", "tok-5f1e2d", "redis://u:pw-9@h/0")
    assert caplog.messages[-1] == "token ${API_TOKEN}, redis redis://u:***@h/0"




def test_each_redactor_hides_only_what_was_hidden_with_it() -> None:
    first, second = Redactor(), Redactor()
    first.hide({"A_TOKEN": "alpha-secret"})
    second.hide({"B_TOKEN": "beta-secret"})
    text = "alpha-secret beta-secret redis://u:pw@h/0"
    assert first.redact(text) == "${A_TOKEN} beta-secret redis://u:***@h/0"
    assert second.redact(text) == "alpha-secret ${B_TOKEN} redis://u:***@h/0"


def test_reading_environment_values_outside_a_job_fails_rather_than_leaving_them_unhidden() -> None:
    with pytest.raises(RuntimeError, match="no redactor is active"):
        resolve_entry({"url": "${TOKEN}"}, {"TOKEN": "tok-5f1e2d"}, "source s")
    assert resolve_entry({"url": "http://h"}, {}, "source s") == {"url": "http://h"}  # nothing read: nothing to hide
    assert redact("redis://u:pw@h/0 tok-5f1e2d") == "redis://u:***@h/0 tok-5f1e2d"  # passwords still masked


def test_a_thread_started_in_a_copy_of_the_jobs_context_redacts_with_its_redactor() -> None:
    seen: list[str] = []
    with hiding(Redactor()) as redactor:
        redactor.hide({"TOKEN": "tok-5f1e2d"})
        thread = threading.Thread(target=contextvars.copy_context().run,
                                  args=(lambda: seen.append(redact("tok-5f1e2d")),))
        thread.start()
        thread.join()
    assert seen == ["${TOKEN}"]
