"""What every console page shares: the page frame (navigation, the refresh script, the style
sheet, all served by the server itself), escaping, tables, and the static files."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from importlib import resources

REFRESH_SECONDS = 10
# Scripts and styles only from the server itself (no inline code, no CDN): a value that slipped
# through escaping could still not run.
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                           "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
_STATIC = {"console.js": "text/javascript; charset=utf-8", "console.css": "text/css; charset=utf-8"}


def e(value: object) -> str:
    """``value`` as HTML text (quotes too: safe inside attributes)."""
    return html.escape(str(value), quote=True)


def number(value: int | float | None) -> str:
    """A count with thousands separators, or ``-`` when there is none."""
    return "-" if value is None else f"{int(value):,}"


def page(title: str, generated: str, json_href: str, body: Iterable[str]) -> str:
    """A whole console page around ``body`` (already escaped HTML)."""
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(title)} · ingest-workers</title>", '<link rel="stylesheet" href="/static/console.css">',
        '<script src="/static/console.js" defer></script>',
        f'<noscript><meta http-equiv="refresh" content="{REFRESH_SECONDS}"></noscript></head>',
        f'<body data-refresh="{REFRESH_SECONDS}"><header><nav><a href="/">sources</a>'
        '<a href="/workers">workers &amp; queues</a>'
        f'<a href="{e(json_href)}">JSON</a><a href="/metrics">metrics</a></nav></header>',
        f'<main><p class="generated">generated {e(generated)}, refreshed every {REFRESH_SECONDS}s</p>',
        *body, "</main></body></html>", ""])


def table(table_id: str, headers: Sequence[str], rows: Iterable[str], empty: str) -> str:
    """A table (in a box that scrolls sideways on a narrow screen) of ``rows`` (``<tr>`` HTML)."""
    body = list(rows)
    if not body:
        return f'<p class="empty" id="{e(table_id)}">{e(empty)}</p>'
    head = "".join(f"<th>{e(header)}</th>" for header in headers)
    return (f'<div class="scroll"><table id="{e(table_id)}"><thead><tr>{head}</tr></thead><tbody>'
            + "".join(body) + "</tbody></table></div>")


def cell(value: object, css: str = "") -> str:
    """A ``<td>`` of ``value`` (escaped), with class ``css``."""
    return f'<td class="{e(css)}">{e(value)}</td>' if css else f"<td>{e(value)}</td>"


def static_file(name: str) -> tuple[bytes, str] | None:
    """The content and type of the console's static file ``name``, or None if there is none such."""
    kind = _STATIC.get(name)
    if kind is None:
        return None
    return resources.files(__package__).joinpath("static", name).read_bytes(), kind
