"""Key segments of the LangGraph adapters.

Names are escaped into one segment each by :mod:`ctxmesh._segments`
(:func:`escape`, :func:`unescape`, re-exported here).

:func:`descending` encodes a string into a segment whose byte order is the
reverse of the string's order, so that listing keys in ascending order (the
only order ctxmesh lists in) yields the newest checkpoint first.
"""

from __future__ import annotations

from .._segments import EMPTY as EMPTY
from .._segments import escape as escape
from .._segments import unescape as unescape


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
