"""A small DOM for tests: the elements of an HTML page (as a browser dumped it) with their
attributes and text, and lookups by tag, class and attributes."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

_VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track",
                   "wbr"})


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    children: list[Element | str] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The text inside the element, stripped."""
        return "".join(child if isinstance(child, str) else child.text_raw() for child in self.children).strip()

    def text_raw(self) -> str:
        return "".join(child if isinstance(child, str) else child.text_raw() for child in self.children)

    def find_all(self, tag: str | None = None, cls: str | None = None, **attrs: str | None) -> list[Element]:
        """Descendants with ``tag`` (any when None), class ``cls`` among their classes, and each of
        ``attrs`` (``data_x`` or ``"data-x"`` keys; a None value: the attribute is present)."""
        found = []
        for child in self.children:
            if isinstance(child, str):
                continue
            if child.matches(tag, cls, attrs):
                found.append(child)
            found += child.find_all(tag, cls, **attrs)
        return found

    def first(self, tag: str | None = None, cls: str | None = None, **attrs: str | None) -> Element:
        matches = self.find_all(tag, cls, **attrs)
        assert matches, f"no <{tag or '*'}> with class {cls} and {attrs}"
        return matches[0]

    def matches(self, tag: str | None, cls: str | None, attrs: dict[str, str | None]) -> bool:
        if tag is not None and self.tag != tag:
            return False
        if cls is not None and cls not in self.attrs.get("class", "").split():
            return False
        for name, value in attrs.items():
            key = name.replace("_", "-") if name.startswith("data_") else name
            if key not in self.attrs or (value is not None and self.attrs[key] != value):
                return False
        return True


class Dom(Element):
    """The whole page: its root element, and its HTML as received."""

    html: str = ""

    @classmethod
    def parse(cls, html: str) -> Dom:
        root = cls("#document", {})
        root.html = html
        _Builder(root).feed(html)
        return root


class _Builder(HTMLParser):
    def __init__(self, root: Element) -> None:
        super().__init__(convert_charrefs=True)
        self._stack = [root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {name: value or "" for name, value in attrs})
        self._stack[-1].children.append(element)
        if tag not in _VOID:
            self._stack.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._stack[-1].children.append(Element(tag, {name: value or "" for name, value in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self._stack) - 1, 0, -1):
            if self._stack[depth].tag == tag:
                del self._stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self._stack[-1].children.append(data)
