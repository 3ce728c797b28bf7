"""A head of this server, and the demo heads (org ``unith``).

Every head the server knows, fault heads included, is in :mod:`.catalog`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .personas import HeadReply, Persona, aiko, kai, nova, plain, recall, with_keywords


@dataclass(frozen=True, slots=True)
class Head:
    org: str
    head_id: str
    alias: str
    language: str
    persona: Persona = field(repr=False)
    operation_mode: str = "oc"
    #: Greeting parts; empty = no greeting (one empty is_last part is still sent).
    greetings: tuple[str, ...] = ()
    phrases: tuple[str, ...] = ()
    #: Streaming heads answer with ``response`` events carrying ``stream_id`` and no
    #: ``video`` [I from C-V2: "streaming or text-only mode: parts arrive as response"].
    streaming_enabled: bool = False
    fault: str | None = None  # fault script applied to every connection to this head

    @property
    def key(self) -> str:
        return f"{self.org}/{self.head_id}"

    @property
    def bot_user_id(self) -> str:
        return f"bot-{self.org}-{self.head_id}"

    @property
    def video_id(self) -> str:
        return f"{self.head_id}-idle-1"

    def reply(self, text: str, earlier: Sequence[str] = ()) -> HeadReply:
        """The answer to ``text``; ``earlier`` are this conversation's previous messages (demo
        heads remember what they were told: :func:`.personas.recall`)."""
        answer = self.persona(text)
        remembered = recall(text, earlier) if self.fault is None else None
        if remembered is not None and answer.parts:
            answer = replace(answer, parts=(remembered, *answer.parts[1:]))
        return answer

    def config(self) -> dict[str, Any]:
        """The body of ``GET /api/v1/head/{org}/{head}`` (fields per PROTOCOL.md §2.2)."""
        return {
            "name": self.head_id,
            "alias": self.alias,
            "org_id": self.org,
            "language": self.language,
            "lang_speech_recognition": self.language,
            "operation_mode": self.operation_mode,
            "phrases": list(self.phrases),
            "greetings": list(self.greetings),
            "streaming_enabled": self.streaming_enabled,
            "allowed_iframe_origins": ["*"],
        }


DEMO_HEADS: tuple[Head, ...] = (
    Head(
        org="unith",
        head_id="aiko",
        alias="Aiko",
        language="en-US",
        persona=with_keywords(aiko),
        greetings=(
            "Hi, I'm Aiko, a digital human on your local Unith server.",
            "Ask me anything, or type 'menu' to see what I can do.",
        ),
        phrases=("Tell me a fact", "What can you do?", "Show me the menu"),
    ),
    Head(
        org="unith",
        head_id="kai",
        alias="Kai",
        language="de-DE",
        operation_mode="doc_qa",
        persona=with_keywords(kai),
        greetings=("Hallo, ich bin Kai. Wie kann ich helfen?",),
        phrases=("Noch ein Tipp", "Menü"),
    ),
    Head(
        org="unith",
        head_id="nova",
        alias="Nova",
        language="en-GB",
        operation_mode="ttt",
        persona=with_keywords(nova),
        greetings=("Nova here.", "I stream my answers in small pieces."),
        phrases=("Tell me more",),
        streaming_enabled=True,
    ),
    Head(
        org="unith",
        head_id="quiet",
        alias="Quiet",
        language="en-US",
        persona=with_keywords(plain),
        greetings=(),  # no greeting: the handshake reply is one empty is_last part
    ),
)
