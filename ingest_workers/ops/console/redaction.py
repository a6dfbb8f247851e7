"""What a rejected record shows on the console: the record as served, with the value of every
environment variable the catalog's sources refer to (``${VAR}``, ``*_env``) shown as its
``${NAME}``, URL passwords masked, and the value of any key named like an auth header replaced.

The server knows a value only if its own environment holds it (run it with the workers'
environment to hide their secrets); the auth-header keys are replaced whatever their value."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ...core.envrefs import variables
from ...core.models import SourceSpec
from ...core.redact import Redactor

HIDDEN = "[redacted]"
_AUTH_KEYS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key",
                        "api_key", "apikey", "access_token", "token", "password", "secret"})


class PayloadRedactor:
    """Redacts rejected records for display (see the module docstring)."""

    def __init__(self, specs: Iterable[SourceSpec], env: Mapping[str, str]) -> None:
        self._text = Redactor()
        keys = set(_AUTH_KEYS)
        for spec in specs:
            names = variables(spec.to_dict())
            self._text.hide({name: env[name] for name in names if env.get(name)})
            keys.add(spec.auth_header.lower())
            if spec.auth and isinstance(spec.auth.get("name"), str):
                keys.add(spec.auth["name"].lower())
        self._keys = frozenset(keys)

    def redact(self, value: Any) -> Any:
        """``value`` (decoded JSON) with hidden values and auth keys replaced; never raises."""
        if isinstance(value, dict):
            return {key: HIDDEN if str(key).lower() in self._keys else self.redact(item)
                    for key, item in value.items()}
        if isinstance(value, list):
            return [self.redact(item) for item in value]
        if isinstance(value, str):
            return self._text.redact(value)
        return value
