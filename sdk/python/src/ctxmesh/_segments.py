"""Escaping of free-form names into ctxmesh key segments.

A ctxmesh key is ``/``-separated segments of ``[A-Za-z0-9._~:@-]+``
(docs/api.md). The framework adapters store names that are arbitrary
strings (LangGraph namespaces and thread ids, session and chat ids), so
each is escaped into exactly one segment:

* ``A-Z a-z 0-9 _ : . -`` stay as they are (a segment made only of dots is
  escaped whole, so that no ``.`` or ``..`` segment reaches a URL);
* every other character becomes ``~XX`` per UTF-8 byte (upper-case hex),
  ``~`` and ``@`` included, so ``@`` never appears in an escaped name and
  can mark a segment's role;
* the empty string becomes ``~`` alone.

The escaping is injective and its inverse is :func:`unescape`.
"""

from __future__ import annotations

_KEEP = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_:.-")
EMPTY = "~"


def escape(name: str) -> str:
    """Escapes ``name`` into one non-empty key segment (see the module doc)."""
    if name == "":
        return EMPTY
    raw = name.encode("utf-8")
    if set(raw) == {ord(".")}:
        return "".join("~2E" for _ in raw)
    out: list[str] = []
    for byte in raw:
        if byte in _KEEP:
            out.append(chr(byte))
        else:
            out.append(f"~{byte:02X}")
    return "".join(out)


def unescape(segment: str) -> str:
    """Inverse of :func:`escape`.

    Raises:
        ValueError: ``segment`` is not the output of :func:`escape`.
    """
    if segment == EMPTY:
        return ""
    out = bytearray()
    i = 0
    while i < len(segment):
        ch = segment[i]
        if ch == "~":
            hex_digits = segment[i + 1 : i + 3]
            if len(hex_digits) != 2:
                raise ValueError(f"malformed escaped segment {segment!r}")
            out.append(int(hex_digits, 16))
            i += 3
        else:
            out.append(ord(ch))
            i += 1
    return out.decode("utf-8")
