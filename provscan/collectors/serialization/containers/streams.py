"""How is a member's stream read: in bounded chunks, with its sniffed first bytes put back?"""

from __future__ import annotations

from typing import Protocol

_CHUNK = 1024 * 1024


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class Rejoined:
    """A stream whose first bytes were already taken to sniff it, put back in front."""

    def __init__(self, head: bytes, rest: Readable) -> None:
        self._head = head
        self._rest = rest

    def read(self, size: int = -1, /) -> bytes:
        if size < 0:
            head, self._head = self._head, b""
            return head + self._rest.read()
        if self._head:
            head, self._head = self._head[:size], self._head[size:]
            return head if len(head) == size else head + self._rest.read(size - len(head))
        return self._rest.read(size)


def read_bounded(stream: Readable, count: int) -> bytes:
    """Read up to `count` bytes in chunks, so a claimed length never allocates up front."""
    parts: list[bytes] = []
    left = count
    while left > 0:
        piece = stream.read(min(left, _CHUNK))
        if not piece:
            break
        parts.append(piece)
        left -= len(piece)
    return b"".join(parts)
