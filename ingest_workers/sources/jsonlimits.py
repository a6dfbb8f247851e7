"""Bounds on what one decoded page may cost: values per page, and nesting per record.

A body under the byte cap can still decode to far more memory than its size (a 9 MB
``[{},{},...]`` is three million dicts), and JSON nested thousands of levels deep
breaks Python's recursive decoder and encoder. So, before decoding, a page's values
are counted from its separators (an upper bound, without decoding); and a page too
deep for the decoder has its deep parts replaced by a marker, so the records around
them decode and the deep record alone is refused (:func:`too_deep`).
"""

from __future__ import annotations

import re
from typing import Any

DEFAULT_MAX_NESTING = 512  # levels per record; Python's json recursion gives out near 1000
DEFAULT_MAX_PAGE_VALUES = 500_000  # values (scalars, lists, objects) per page: tens of MB decoded at most
DEEP_MARKER = "<nested too deep>"
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
_OPEN, _CLOSE = frozenset(b"[{"), frozenset(b"]}")


def values_at_most(body: bytes) -> int:
    """An upper bound of the values ``body`` decodes to: each value but the first follows a
    comma or opens a list or object (commas and brackets inside strings only raise the bound)."""
    return body.count(b",") + body.count(b"[") + body.count(b"{") + 1


def cut_deeper_than(body: bytes, depth: int) -> bytes:
    """``body`` with every list or object that opens deeper than ``depth`` levels replaced by
    the string :data:`DEEP_MARKER`, so that it decodes without deep recursion."""
    out, level, kept, cut_start = [], 0, 0, -1
    for token in _TOKENS.finditer(body):
        first = token.group()[0]
        if first in _OPEN:
            level += 1
            if level == depth + 1 and cut_start < 0:
                cut_start = token.start()
        elif first in _CLOSE:
            if level == depth + 1 and cut_start >= 0:
                out += [body[kept:cut_start], b'"' + DEEP_MARKER.encode() + b'"']
                kept, cut_start = token.end(), -1
            level -= 1
    out.append(body[kept:] if cut_start < 0 else body[kept:cut_start] + b'"' + DEEP_MARKER.encode() + b'"')
    return b"".join(out)


def too_deep(value: Any, limit: int) -> bool:
    """True when ``value`` nests lists or objects more than ``limit`` levels deep (iterative:
    no recursion, whatever the depth). A scalar is 0 levels, ``[]`` and ``{}`` one."""
    stack = [(value, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        node, level = pop()
        kind = type(node)
        if kind is dict:
            children: Any = node.values()
        elif kind is list:
            children = node
        else:
            continue
        if level > limit:
            return True
        for child in children:
            if type(child) is dict or type(child) is list:
                push((child, level + 1))
    return False
