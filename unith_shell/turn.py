"""Turn assembly: the parts answering one user message, put in order and bounded.

No I/O and no clock of its own (the caller may pass ``now``): :class:`Turn` takes parsed
:class:`~unith_shell.protocol.ResponsePart` events and says which parts became showable.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from unith_shell.protocol import ProtocolError, ResponsePart

#: Default cap on the parts of one reply, and on ``part_order`` (0 .. cap-1).
DEFAULT_MAX_PARTS = 10_000
#: Default cap on the bytes of the frames one reply keeps (each part holds its whole frame).
#: Real replies are a few KiB; without it, 10,000 parts of 1 MiB each would be 10 GiB.
DEFAULT_MAX_TURN_BYTES = 8 * 1024 * 1024


class TurnOverflow(ProtocolError):
    """A reply went past the parts cap (too many parts, or a ``part_order`` beyond it)."""


@dataclass(slots=True)
class Turn:
    """One reply being assembled: the parts answering message ``message_id``.

    Parts are ordered by ``part_order``, never by arrival. Duplicates (same ``part_order``)
    are dropped; a part without ``part_order`` is placed after the numbered ones in arrival
    order. The turn is complete on a part with ``is_last`` or on an ending event.

    Memory and time are linear in the parts that arrived, whatever ``part_order`` says: at
    most ``max_parts`` parts are kept, a ``part_order`` of ``max_parts`` or more is refused
    (:class:`TurnOverflow`), and nothing is ever sized by a part number. The parts kept
    hold at most ``max_bytes`` of frames (their size on the wire, as the session passes it)
    between them; past that the turn is refused the same way.
    """

    message_id: int | None
    #: The text sent (after ``before_send`` plugins changed it).
    prompt: str = ""
    #: The text as the user typed it (what ``/retry`` sends again).
    input: str = ""
    sent_at: float = field(default_factory=time.monotonic)
    first_part_at: float | None = None
    completed_at: float | None = None
    #: Why the turn ended: "last", an ending event's name, "interrupted", "timed out",
    #: "disconnected"; ``None`` while in flight.
    outcome: str | None = None
    error: str | None = None
    suggestions: list[str] = field(default_factory=list)
    max_parts: int = DEFAULT_MAX_PARTS
    max_bytes: int = DEFAULT_MAX_TURN_BYTES
    _bytes: int = field(default=0, repr=False)
    _numbered: dict[int, ResponsePart] = field(default_factory=dict, repr=False)
    _unnumbered: list[ResponsePart] = field(default_factory=list, repr=False)
    _last_order: int | None = field(default=None, repr=False)
    _next_to_show: int = field(default=0, repr=False)

    @property
    def complete(self) -> bool:
        return self.outcome is not None

    @property
    def ok(self) -> bool:
        """Complete with a reply: every part in, or a ``choice`` that ends the turn."""
        return self.outcome in ("last", "choice")

    @property
    def parts(self) -> list[ResponsePart]:
        """The parts received so far, in ``part_order``."""
        ordered = [self._numbered[k] for k in sorted(self._numbered)]
        return ordered + self._unnumbered

    @property
    def text(self) -> str:
        return "\n".join(p.text for p in self.parts if p.text)

    @property
    def missing(self) -> list[int]:
        """The first (up to 20) part numbers below the last known one that never arrived."""
        return self._missing(20)[0]

    @property
    def missing_count(self) -> int:
        """How many part numbers below the last known one never arrived."""
        return self._missing(0)[1]

    def _missing(self, limit: int) -> tuple[list[int], int]:
        # Walks the parts received, never a range of part numbers: linear in what arrived.
        if not self._numbered:
            return [], 0
        top = self._last_order if self._last_order is not None else max(self._numbered)
        first: list[int] = []
        count = 0
        expected = 0
        for order in sorted(self._numbered):
            if order > top:
                break
            if order > expected:
                gap = order - expected
                count += gap
                first.extend(range(expected, min(order, expected + limit - len(first))))
            expected = order + 1
        if top >= expected:
            count += top + 1 - expected
            first.extend(range(expected, min(top + 1, expected + limit - len(first))))
        return first[:limit], count

    @property
    def first_latency(self) -> float | None:
        return None if self.first_part_at is None else self.first_part_at - self.sent_at

    @property
    def total_latency(self) -> float | None:
        return None if self.completed_at is None else self.completed_at - self.sent_at

    @property
    def last_seen(self) -> bool:
        """The ``is_last`` part is in, though earlier parts may still be missing."""
        return self._last_order is not None

    def add(
        self, part: ResponsePart, now: float | None = None, size: int | None = None
    ) -> list[ResponsePart]:
        """Add a part; return the parts that became showable in order (maybe none).

        ``size`` is the part's frame on the wire (its text and media when not given); what
        the turn keeps is bounded by ``max_bytes``.

        A part that arrives before its predecessors waits for them. The turn completes when
        the ``is_last`` part and every part before it are in; if the server skipped a part,
        the owner ends the wait with :meth:`finish` (the session does after a short grace).
        """
        if self.complete:
            return []
        order = part.part_order
        if order is not None and order >= self.max_parts:
            raise TurnOverflow(f"part_order {order} is beyond the cap of {self.max_parts} parts")
        if len(self._numbered) + len(self._unnumbered) >= self.max_parts:
            raise TurnOverflow(f"more than {self.max_parts} parts in one reply")
        now = time.monotonic() if now is None else now
        if self.first_part_at is None:
            self.first_part_at = now
        if part.suggestions:
            self.suggestions = list(part.suggestions)
        if order is None:
            # No part_order at all [tolerance]: show in arrival order, after the numbered ones.
            self._keep(part, size)
            self._unnumbered.append(part)
            if part.is_last:
                tail = [*self._flush(), part]
                self._finish("last", now)
                return tail
            return [part]
        if order in self._numbered or order < 0:
            return []  # a duplicate (or nonsense order): the first copy wins
        self._keep(part, size)
        self._numbered[order] = part
        if part.is_last:
            self._last_order = order
        ready: list[ResponsePart] = []
        while self._next_to_show in self._numbered:
            ready.append(self._numbered[self._next_to_show])
            self._next_to_show += 1
        if self._last_order is not None and self._next_to_show > self._last_order:
            ready.extend(self._flush())  # parts numbered past is_last, if any
            self._finish("last", now)
        return ready

    def _keep(self, part: ResponsePart, size: int | None) -> None:
        if size is None:
            size = len(part.text) + sum(len(url) for url in part.media)
        if self._bytes + size > self.max_bytes:
            raise TurnOverflow(f"more than {self.max_bytes} bytes of parts in one reply")
        self._bytes += size

    def finish(
        self, outcome: str, error: str | None = None, now: float | None = None
    ) -> list[ResponsePart]:
        """End the turn for ``outcome``; return any held-back parts not yet shown."""
        if self.complete:
            return []
        rest = self._flush()
        self.error = error
        self._finish(outcome, time.monotonic() if now is None else now)
        return rest

    def _flush(self) -> list[ResponsePart]:
        rest = [self._numbered[k] for k in sorted(self._numbered) if k >= self._next_to_show]
        if self._numbered:
            self._next_to_show = max(self._numbered) + 1
        return rest

    def _finish(self, outcome: str, now: float) -> None:
        self.outcome = outcome
        self.completed_at = now
