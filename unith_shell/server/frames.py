"""Builds the server's JSON frames for one connection (PROTOCOL.md §3.2–3.6)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from unith_shell.protocol import GREETING_ID

from .heads import Head
from .personas import HeadReply

Json = dict[str, Any]


@dataclass(slots=True)
class Turn:
    """The frames answering one user message, in the order a well-behaved server sends them."""

    input_id: Any
    echo: Json
    before: list[Json]
    parts: list[Json]  # reply parts, or the single choice / unith_nlp_exception event
    after: list[Json]


@dataclass(slots=True)
class FrameBuilder:
    head: Head
    base_url: str  # this server's origin, for media URLs
    text_only: bool
    ids: itertools.count[int]  # server frame ids, shared by the whole server

    @property
    def event(self) -> str:
        # V2: "response" in text-only/streaming sessions, "text" in video mode [C-V2, I].
        return "response" if self.text_only or self.head.streaming_enabled else "text"

    def video_url(self, frame_id: int) -> str:
        return f"{self.base_url}/media/{self.head.org}/{self.head.head_id}/reply-{frame_id}.mp4"

    def parts(
        self, input_id: Any, texts: Sequence[str], suggestions: Iterable[str] = ()
    ) -> list[Json]:
        """Parts 0..n-1 answering ``input_id``; ``is_last`` and ``suggestions`` on the last."""
        event = self.event
        video_mode = event == "text"
        streaming = self.head.streaming_enabled and not self.text_only
        user_id = self.head.bot_user_id
        alias = self.head.alias
        last = len(texts) - 1
        out: list[Json] = []
        for order, text in enumerate(texts):
            frame_id = next(self.ids)
            part: Json = {
                "event": event,
                "id": frame_id,
                "user_id": user_id,
                "username": alias,
                "text": text,
                "input_message_id": input_id,
                "part_order": order,
                "is_last": order == last,
            }
            if video_mode:
                part["video"] = self.video_url(frame_id)
            if video_mode or streaming:
                part["stream_id"] = f"{self.head.org}-{self.head.head_id}-{frame_id}"
            out.append(part)
        chips = list(suggestions)
        if out and chips:
            out[-1]["suggestions"] = chips
        return out

    def greeting(self, enabled: bool = True) -> list[Json]:
        texts = self.head.greetings if enabled else ()
        # A head without a greeting still ends the handshake reply with one is_last frame,
        # or PY-style clients that read until is_last would hang [I, PROTOCOL.md §3.2].
        # The head's phrases ride on the last greeting part as suggestions [I].
        return self.parts(GREETING_ID, texts or ("",), self.head.phrases if texts else ())

    def echo(self, message: Json) -> Json:
        # Echo shape [I, PROTOCOL.md §3.4]: same id/user_id/text, username "user", never is_last,
        # no part_order and no input_message_id.
        return {
            "event": "text",
            "id": message.get("id"),
            "user_id": message.get("user_id"),
            "username": "user",
            "text": message.get("text", ""),
            "is_last": False,
        }

    def choice(self, input_id: Any, text: str, suggestions: Iterable[str]) -> Json:
        return {
            "event": "choice",
            "id": next(self.ids),
            "user_id": self.head.bot_user_id,
            "username": self.head.alias,
            "text": text,
            "input_message_id": input_id,
            "part_order": 0,
            "suggestions": list(suggestions),
            "is_last": True,
        }

    def nlp_exception(self, input_id: Any, level: int, message: str) -> Json:
        # Only `level` is known [C-V2]; the other field names are [U].
        return {
            "event": "unith_nlp_exception",
            "level": level,
            "message": message,
            "input_message_id": input_id,
        }

    def turn(self, message: Json, reply: HeadReply) -> Turn:
        input_id = message.get("id")
        if reply.choice:
            parts = [self.choice(input_id, reply.message, reply.choice)]
        elif reply.nlp_level is not None:
            parts = [self.nlp_exception(input_id, reply.nlp_level, reply.message)]
        else:
            parts = self.parts(input_id, reply.parts or ("",), reply.suggestions)
        return Turn(
            input_id=input_id,
            echo=self.echo(message),
            before=[dict(event) for event in reply.before],
            parts=parts,
            after=[dict(event) for event in reply.after],
        )
