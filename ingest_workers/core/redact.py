"""Keep secrets out of anything a person or a metric system sees.

:func:`mask_url` masks the passwords of URLs and connection strings. A :class:`Redactor` does that
and also replaces the values of the environment variables a job's catalog entry uses (registered
with :meth:`Redactor.hide` when the worker resolves them) with their ``${NAME}``; a job's log lines,
errors and tracebacks go through it.

Each worker's :class:`~ingest_workers.runtime.resources.Resources` owns one redactor, and makes it
the *active* one for the duration of a job (:func:`hiding`, a context variable, as RQ's
``get_current_job``): code that has no way to be handed it (the log record factory, an error
message built deep in the HTTP client) reaches it through :func:`redact` and :func:`hide`. Threads
a job starts run in a copy of its context (``sources.page_fetch``, ``sources.prefetch``), so they
see it too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar

_USERINFO_PASSWORD = re.compile(r"(://[^:/?#@]*:)[^/?#]*@")
_PASSWORD_PARAM = re.compile(r"(\b\w*password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&#]+)", re.IGNORECASE)
MIN_HIDDEN_LENGTH = 4  # shorter values (and plain numbers) would garble every message, and hide nothing


def mask_url(url: str) -> str:
    """``url`` with any password (in the userinfo, or a ``password=`` parameter of a
    URL or libpq string) replaced by ``***``; never raises."""
    return _PASSWORD_PARAM.sub(r"\1***", _USERINFO_PASSWORD.sub(r"\1***@", str(url)))


class Redactor:
    """The environment values jobs read, each shown in messages as its ``${NAME}``."""

    def __init__(self) -> None:
        self._hidden: dict[str, str] = {}  # value -> what messages show instead

    def hide(self, values: Mapping[str, str]) -> None:
        """From now on, :meth:`redact` shows each variable's value as ``${NAME}`` (values shorter
        than :data:`MIN_HIDDEN_LENGTH` and plain numbers excepted)."""
        for name, value in values.items():
            if len(value) >= MIN_HIDDEN_LENGTH and not value.isdigit():
                self._hidden[value] = "${" + name + "}"

    def redact(self, text: str) -> str:
        """``text`` with hidden values replaced (longest first) and URL passwords masked; never raises."""
        text = str(text)
        for value in sorted(self._hidden, key=len, reverse=True):
            if value in text:
                text = text.replace(value, self._hidden[value])
        return mask_url(text)

    def redact_exception(self, exc: BaseException) -> None:
        """Redact, in place, the text arguments of ``exc`` and of the exceptions it was raised from or
        during, so the traceback RQ stores and logs shows no hidden value."""
        seen: set[int] = set()
        current: BaseException | None = exc
        pending: list[BaseException] = []
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            current.args = tuple(self.redact(arg) if isinstance(arg, str) else arg for arg in current.args)
            pending += [e for e in (current.__cause__, current.__context__) if e is not None]
            current = pending.pop() if pending else None


_active: ContextVar[Redactor | None] = ContextVar("ingest_redactor", default=None)


@contextmanager
def hiding(redactor: Redactor) -> Iterator[Redactor]:
    """Make ``redactor`` the active one in this context (and the threads started from it with a
    copy of it) for the duration of the block."""
    token = _active.set(redactor)
    try:
        yield redactor
    finally:
        _active.reset(token)


def active() -> Redactor | None:
    """The redactor of the job running in this context, or None outside a job."""
    return _active.get()


def hide(values: Mapping[str, str]) -> None:
    """Hide ``values`` with the active redactor (:meth:`Redactor.hide`). Raises ``RuntimeError`` when
    there is something to hide but no redactor is active: the value would show in messages."""
    redactor = _active.get()
    if redactor is not None:
        redactor.hide(values)
    elif values:
        raise RuntimeError("environment values were read outside a job: no redactor is active to hide them "
                           "(run the job inside ingest_workers.runtime.resources.serving)")


def redact(text: str) -> str:
    """``text`` through the active redactor, or with only URL passwords masked outside a job; never raises."""
    redactor = _active.get()
    return redactor.redact(text) if redactor is not None else mask_url(text)

