"""Escaping of free-form names into ctxmesh key segments.

A ctxmesh key is ``/``-separated segments of ``[A-Za-z0-9._~:@-]+``
(docs/api.md). LangGraph names (namespace labels, item keys, thread ids,
checkpoint namespaces, channel names, task ids) are arbitrary strings, so
each is escaped into exactly one segment:

* ``A-Z a-z 0-9 _ : . -`` stay as they are (a segment made only of dots is
  escaped whole, so that no ``.`` or ``..`` segment reaches a URL);
* every other character becomes ``~XX`` per UTF-8 byte (upper-case hex),
  ``~`` and ``@`` included, so ``@`` never appears in an escaped name and
  can mark a segment's role;
* the empty string becomes ``~`` alone.

The escaping is injective and its inverse is :func:`unescape`.

:func:`descending` encodes a string into a segment whose byte order is the
reverse of the string's order, so that listing keys in ascending order (the
only order ctxmesh lists in) yields the newest checkpoint first.
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


def descending(value: str) -> str:
    """Encodes ``value`` so that ascending segment order is descending value order.

    Each UTF-8 byte ``b`` becomes the two hex digits of ``255 - b``, and a
    final ``z`` (greater than any hex digit) makes a longer string sort
    before its own prefixes, as it must when the order is reversed.
    """
    return "".join(f"{255 - b:02x}" for b in value.encode("utf-8")) + "z"


def from_descending(segment: str) -> str:
    """Inverse of :func:`descending`."""
    if not segment.endswith("z") or len(segment) % 2 != 1:
        raise ValueError(f"malformed descending segment {segment!r}")
    body = segment[:-1]
    return bytes(255 - int(body[i : i + 2], 16) for i in range(0, len(body), 2)).decode("utf-8")
