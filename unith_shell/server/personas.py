"""What the demo heads say: deterministic, non-echo replies and keyword behaviours.

Every demo head (``unith/*``) reacts to these words in a message (whole words, any case), so a
person can see each server event type from the CLI:

* ``menu`` / ``options`` (``menü`` / ``optionen``): a ``choice`` event with suggestions instead
  of reply parts.
* ``bye`` / ``goodbye`` (``tschüss`` / ``ciao``): a normal reply, then ``conversation_end``.
* ``error``: an ``unith_nlp_exception`` with ``level`` 400 instead of reply parts.
* ``crash``: an ``unith_nlp_exception`` with ``level`` 500.
* ``feedback``: a normal reply, then ``analytics-userFeedback``.
* ``surprise``: an unknown event (``brand_new_thing``), then a normal reply.
* ``what was my X?`` (or ``what is my X``): if an earlier message in the same conversation
  said ``my X is Y``, the first part answers ``You told me your X is Y.`` (see :func:`recall`).

Anything else gets the head's own answer. Choices are made with a stable hash of the text
(``hashlib``, not ``hash()``), so the same message always gets the same reply.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

Json = dict[str, Any]

MENU_WORDS = frozenset({"menu", "options", "menü", "optionen"})
BYE_WORDS = frozenset({"bye", "goodbye", "tschüss", "ciao"})


@dataclass(frozen=True, slots=True)
class HeadReply:
    """A head's answer to one message, before it is turned into wire frames."""

    parts: tuple[str, ...] = ()
    suggestions: tuple[str, ...] = ()
    #: Non-empty: answer with one ``choice`` event offering these instead of parts.
    choice: tuple[str, ...] = ()
    #: Set: answer with an ``unith_nlp_exception`` of this level instead of parts.
    nlp_level: int | None = None
    #: The choice prompt or the exception message.
    message: str = ""
    before: tuple[Json, ...] = field(default=())  # events sent before the parts
    after: tuple[Json, ...] = field(default=())  # events sent after the parts


Persona = Callable[[str], HeadReply]


def pick(text: str, salt: str, options: Sequence[str]) -> str:
    """One of ``options``, chosen by a stable hash of ``text``."""
    digest = hashlib.sha256(f"{salt}\x00{text}".encode()).digest()
    return options[int.from_bytes(digest[:4], "big") % len(options)]


def quote(text: str, limit: int = 80) -> str:
    """The message on one line, shortened for quoting back."""
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"


def words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def with_keywords(persona: Persona) -> Persona:
    """Wrap a persona with the keyword behaviours listed in the module docstring."""

    def reply(text: str) -> HeadReply:
        found = words(text)
        if found & MENU_WORDS:
            return HeadReply(
                choice=("Tell me a fact", "What can you do?", "Goodbye"),
                message="Here is what you can try:",
            )
        if "error" in found:
            return HeadReply(nlp_level=400, message="I could not make sense of that message.")
        if "crash" in found:
            return HeadReply(nlp_level=500, message="The language model failed to answer.")
        base = persona(text)
        if found & BYE_WORDS:
            return _extend(base, after=({"event": "conversation_end"},))
        if "feedback" in found:
            return _extend(base, after=({"event": "analytics-userFeedback"},))
        if "surprise" in found:
            novel = {"event": "brand_new_thing", "detail": "an event this client has never seen"}
            return _extend(base, before=(novel,))
        return base

    return reply


_TOLD = re.compile(r"\bmy ([a-z][a-z ]{0,38}?) (?:is|was) ([^,.;!?]+)", re.IGNORECASE)
_ASKED = re.compile(r"\bwhat(?: is|'s| was) my ([a-z][a-z ]{0,38}?)\s*\??\s*$", re.IGNORECASE)


def recall(text: str, earlier: Sequence[str]) -> str | None:
    """A demo heads' short memory: ``what was my X?`` after ``my X is Y`` earlier in the same
    conversation answers ``You told me your X is Y.``; ``None`` when it does not apply."""
    asked = _ASKED.search(text.strip())
    if asked is None:
        return None
    thing = " ".join(asked.group(1).lower().split())
    for said in reversed(earlier):
        for told in _TOLD.finditer(said):
            if " ".join(told.group(1).lower().split()) == thing:
                return f"You told me your {thing} is {told.group(2).strip()}."
    return f"You have not told me your {thing} yet."


def _extend(
    base: HeadReply, *, before: tuple[Json, ...] = (), after: tuple[Json, ...] = ()
) -> HeadReply:
    return HeadReply(
        parts=base.parts,
        suggestions=base.suggestions,
        before=base.before + before,
        after=base.after + after,
    )


AIKO_FACTS = (
    "Fun fact: a talking head's lip movements are rendered per reply part, one video each.",
    "Fun fact: the first chatbot, ELIZA, was written at MIT in the mid-1960s.",
    "Fun fact: honey found in ancient Egyptian tombs was still edible.",
    "Fun fact: octopuses have three hearts and blue blood.",
    "Fun fact: a day on Venus is longer than its year.",
    "Fun fact: the Eiffel Tower grows about 15 cm taller on hot summer days.",
    "Fun fact: bananas are berries, but strawberries are not.",
)
AIKO_QUESTIONS = (
    "What would you like to talk about next?",
    "Is there anything else I can help you with?",
    "Shall I tell you another fact?",
    "What made you think of that?",
)
AIKO_SUGGESTIONS = ("Tell me a fact", "What can you do?", "Show me the menu", "Goodbye")


def aiko(text: str) -> HeadReply:
    """Friendly and English: acknowledgement, a fact, a follow-up question."""
    said = quote(text)
    ack = f"You said “{said}”. Thanks for telling me!" if said else "You didn't say anything."
    first = AIKO_SUGGESTIONS.index(pick(text, "aiko-sug", AIKO_SUGGESTIONS))
    suggestions = tuple(AIKO_SUGGESTIONS[(first + i) % len(AIKO_SUGGESTIONS)] for i in range(3))
    return HeadReply(
        parts=(ack, pick(text, "aiko-fact", AIKO_FACTS), pick(text, "aiko-q", AIKO_QUESTIONS)),
        suggestions=suggestions,
    )


KAI_TIPS = (
    "Tipp: Speichern Sie Ihre Arbeit regelmäßig.",
    "Tipp: Kurze Sätze sind leichter zu verstehen.",
    "Tipp: Eine Pause alle 90 Minuten hält den Kopf frisch.",
    "Tipp: Messen Sie zweimal, sägen Sie einmal.",
)


def kai(text: str) -> HeadReply:
    """Terse and German: a confirmation and one tip, two parts."""
    said = quote(text, 60)
    return HeadReply(
        parts=(f"Verstanden: „{said}“.", pick(text, "kai-tip", KAI_TIPS)),
        suggestions=("Noch ein Tipp", "Menü", "Tschüss"),
    )


def nova(text: str) -> HeadReply:
    """A streaming-style head: one sentence delivered in short chunks, like token streaming."""
    topic = pick(text, "nova-topic", ("stars", "oceans", "forests", "cities", "music"))
    sentence = (
        f"Streaming an answer about {topic}, inspired by “{quote(text, 40)}”, "
        "one small chunk at a time."
    )
    chunks = sentence.split(" ")
    size = 3
    parts = tuple(" ".join(chunks[i : i + size]) for i in range(0, len(chunks), size))
    return HeadReply(parts=parts, suggestions=("Tell me more", "Show me the menu"))


def plain(text: str) -> HeadReply:
    """Predictable three-part replies for the fault heads (easy to assert on)."""
    said = quote(text)
    return HeadReply(
        parts=(f"Reply to “{said}”, part 1 of 3.", "Part 2 of 3.", "Part 3 of 3."),
        suggestions=("Again", "Something else"),
    )
