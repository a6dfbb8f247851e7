"""Keep secrets out of anything a person or a metric system sees.

:func:`mask_url` masks the passwords of URLs and connection strings. :func:`redact` does that and
also replaces the values of the environment variables a job's catalog entry uses (registered with
:func:`hide` by the worker that resolved them) with their ``${NAME}``; a job's log lines, errors and
tracebacks go through it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_USERINFO_PASSWORD = re.compile(r"(://[^:/?#@]*:)[^/?#]*@")
_PASSWORD_PARAM = re.compile(r"(\b\w*password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&#]+)", re.IGNORECASE)
MIN_HIDDEN_LENGTH = 4  # shorter values (and plain numbers) would garble every message, and hide nothing

# value -> what messages show instead; per process (a forked job's own, or the SimpleWorker's jobs').
_hidden: dict[str, str] = {}


def mask_url(url: str) -> str:
    """``url`` with any password (in the userinfo, or a ``password=`` parameter of a
    URL or libpq string) replaced by ``***``; never raises."""
    return _PASSWORD_PARAM.sub(r"\1***", _USERINFO_PASSWORD.sub(r"\1***@", str(url)))


def hide(values: Mapping[str, str]) -> None:
    """From now on, :func:`redact` in this process shows each variable's value as ``${NAME}``
    (values shorter than :data:`MIN_HIDDEN_LENGTH` and plain numbers excepted)."""
    for name, value in values.items():
        if len(value) >= MIN_HIDDEN_LENGTH and not value.isdigit():
            _hidden[value] = "${" + name + "}"


def redact(text: str) -> str:
    """``text`` with hidden values replaced (longest first) and URL passwords masked; never raises."""
    text = str(text)
    for value in sorted(_hidden, key=len, reverse=True):
        if value in text:
            text = text.replace(value, _hidden[value])
    return mask_url(text)


def redact_exception(exc: BaseException) -> None:
    """Redact, in place, the text arguments of ``exc`` and of the exceptions it was raised from or
    during, so the traceback RQ stores and logs shows no hidden value."""
    seen: set[int] = set()
    current: BaseException | None = exc
    pending: list[BaseException] = []
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in current.args)
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]
        current = pending.pop() if pending else None
