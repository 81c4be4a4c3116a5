"""Finding the line of a key in TOML text, so spec errors can say where the problem is.

``tomllib`` reports line numbers only for syntax errors; a spec that parses but names an unknown
key or measure still deserves "line 12". :class:`Locator` scans the text for table headers
(``[a.b]``, ``[[pairs]]``) and ``key =`` lines and maps a key path such as
``("pairs", 2, "within")`` (2 = the third ``[[pairs]]`` table) to a 1-based line number. It is a
heuristic over well-formed TOML, good for the layouts people write by hand.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
PathPart = str | int


class Locator:
    """Maps key paths of a parsed TOML document back to lines of its text."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.headers: list[tuple[tuple[PathPart, ...], int]] = []  # (path, 0-based line)
        counts: dict[tuple[PathPart, ...], int] = {}
        for i, line in enumerate(self.lines):
            m = _HEADER.match(line)
            if not m or "=" in m.group(2):
                continue
            parts: list[PathPart] = [a or b or c for a, b, c in re.findall(  # dotted, quoted
                r'"([^"]*)"|\'([^\']*)\'|([^.\s]+)', m.group(2))]
            if m.group(1) == "[[":
                base = tuple(parts)
                index = counts.get(base, 0)
                counts[base] = index + 1
                parts.append(index)
            self.headers.append((tuple(parts), i))

    def _body(self, start: int | None) -> range:
        """Line indices of the section that starts after header line ``start`` (None = top)."""
        begin = 0 if start is None else start + 1
        end = next((line for _, line in self.headers if line >= begin), len(self.lines))
        return range(begin, end)

    def _key_line(self, key: str, lines: range) -> int | None:
        pattern = re.compile(rf"^\s*(\"{re.escape(key)}\"|'{re.escape(key)}'|{re.escape(key)})"
                             r"\s*(=|\.)")
        inline = re.compile(rf"[{{,]\s*(\"{re.escape(key)}\"|{re.escape(key)})\s*=")
        for i in lines:
            if pattern.match(self.lines[i]):
                return i
        for i in lines:
            if inline.search(self.lines[i]):
                return i
        return None

    def line(self, *path: PathPart) -> int | None:
        """1-based line of the key at ``path``, or of the closest enclosing table; None if lost."""
        best: tuple[int, int | None] = (-1, None)  # (matched length, header line)
        for hpath, hline in self.headers:
            n = len(hpath)
            if n <= len(path) and tuple(path[:n]) == hpath and n > best[0]:
                best = (n, hline)
        matched, header = best
        rest = [p for p in path[max(matched, 0):] if isinstance(p, str)]
        found: int | None = header
        lines = self._body(header)
        for key in rest[:1]:
            hit = self._key_line(key, lines)
            if hit is not None:
                found = hit
                # deeper keys of an inline table usually sit on the same or following lines
                for deeper in rest[1:]:
                    sub = self._key_line(deeper, range(hit, lines.stop))
                    if sub is not None:
                        found = sub
                        break
        return None if found is None else found + 1

    def value_line(self, value: str, *path: PathPart) -> int | None:
        """Line of the quoted string ``value`` at or after the line of ``path``."""
        start = (self.line(*path) or 1) - 1
        needle = re.compile(rf"[\"']{re.escape(value)}[\"']")
        for i in range(start, len(self.lines)):
            if needle.search(self.lines[i]):
                return i + 1
        return self.line(*path)


def dotted(path: Sequence[PathPart]) -> str:
    """``("pairs", 2, "within")`` -> ``pairs[2].within`` for messages."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out
