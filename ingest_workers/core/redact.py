"""Keep secrets out of anything a person or a metric system sees."""

from __future__ import annotations

import re

_USERINFO_PASSWORD = re.compile(r"(://[^:/?#@]*:)[^/?#]*@")
_PASSWORD_PARAM = re.compile(r"(\b\w*password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&#]+)", re.IGNORECASE)


def mask_url(url: str) -> str:
    """``url`` with any password (in the userinfo, or a ``password=`` parameter of a
    URL or libpq string) replaced by ``***``; never raises."""
    return _PASSWORD_PARAM.sub(r"\1***", _USERINFO_PASSWORD.sub(r"\1***@", str(url)))
