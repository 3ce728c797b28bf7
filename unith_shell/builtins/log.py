"""``/log on [PATH] | off | show [N] | path | export md PATH``: a JSON Lines transcript.

The first line is a header (format name and version, client version, head, the base URL's
host, start time; see :mod:`unith_shell.recordings.format` and docs/recordings.md), then every
frame sent and received becomes one line::

    {"time": "2026-01-01T12:00:00.123+00:00", "direction": "out", "head": "unith/aiko",
     "event": "text", "payload": {...}}

``payload`` is the frame's JSON with ``token``, ``api_key``, ``password`` (and the other
:data:`unith_shell.protocol.SECRET_KEYS`) replaced by ``"***"``; a frame that is not JSON is
kept as ``{"text": ...}``, a binary one as ``{"binary_bytes": N}``. Each line is flushed as
it is written, so a shell that is killed loses nothing it had already received.

The default file is per shell run: ``<data dir>/transcripts/<time>-<org>-<head>-<pid>.jsonl``
(mode 0600 in a 0700 folder). A disconnect is one more line (``direction: "meta"``,
``event: "disconnect"``), so a replay can cut a turn where the original was cut.
``/log on PATH`` appends to an existing regular file and leaves its mode alone;
``/log export md PATH`` refuses an existing file unless ``--force``. Neither follows a
symbolic link. While logging is off, no ``on_frame`` hook is registered at
all: the recorder is added to the plugin manager by ``/log on`` and removed by ``/log off``.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from unith_shell.commands import CommandError
from unith_shell.context import Context
from unith_shell.files import name_part, open_private
from unith_shell.hookspecs import hookimpl
from unith_shell.protocol import loads_bounded, redact
from unith_shell.recordings.format import disconnect_record, header_record
from unith_shell.sanitize import json_line, sanitize_block

USAGE = "usage: /log on [PATH] | off | show [N] | path | export md [--force] PATH"
RECORDER = "log-recorder"


def frame_record(direction: str, data: str | bytes, head: str) -> dict[str, Any]:
    """One transcript line for a frame, secrets redacted."""
    payload: Any
    event: str | None = None
    if isinstance(data, bytes):
        payload = {"binary_bytes": len(data)}
    else:
        payload = {"text": data}  # not JSON, or JSON null: kept as the raw text
        try:
            obj = loads_bounded(data)  # a 900-deep frame is kept as text, not a dead recorder
        except ValueError:
            obj = None
        if obj is not None:
            payload = redact(obj)
            if isinstance(obj, dict):
                value = obj.get("event", obj.get("message_type"))
                if isinstance(value, str):
                    event = value
                elif direction == "out" and "token" in obj:
                    event = "handshake"
    return {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "direction": direction,
        "head": head,
        "event": event,
        "payload": payload,
    }


class Recorder:
    """The ``on_frame`` implementation, registered only while logging is on."""

    def __init__(
        self, path: Path, file: TextIO, scrub: Callable[[str], str] = lambda text: text
    ) -> None:
        self.path = path
        self.file = file
        self.scrub = scrub
        self.lines = 0

    @hookimpl
    def on_frame(self, direction: str, data: str | bytes, session: Any) -> None:
        opts = session.options
        # Keys are redacted in frame_record; a secret typed into a message is masked by value.
        text = self.scrub(data) if isinstance(data, str) else data
        record = frame_record(direction, text, f"{opts.org}/{opts.head}")
        self.file.write(json_line(record) + "\n")  # controls and bidi as \uXXXX, never raw
        self.file.flush()  # per line: a killed shell keeps every line written so far
        self.lines += 1

    @hookimpl
    def on_disconnect(self, session: Any, reason: str) -> None:
        opts = session.options
        record = disconnect_record(self.scrub(reason), f"{opts.org}/{opts.head}")
        self.file.write(json_line(record) + "\n")
        self.file.flush()
        self.lines += 1

    def close(self) -> None:
        self.file.close()


class LogState:
    """Per shell: the recorder while on, and the file last written (for show/export)."""

    def __init__(self) -> None:
        self.recorder: Recorder | None = None
        self.last_path: Path | None = None
        self.default_path: Path | None = None


def state_of(ctx: Context) -> LogState:
    """This plugin's state in this shell (``ctx.state``: it lives as long as the shell)."""
    state = ctx.state.get("log")
    if not isinstance(state, LogState):
        state = ctx.state["log"] = LogState()
    return state


def default_path(ctx: Context, state: LogState) -> Path:
    if state.default_path is None:
        session = ctx.session
        stamp = time.strftime("%Y%m%d-%H%M%S")
        name = f"{stamp}-{name_part(session.org)}-{name_part(session.head)}-{os.getpid()}.jsonl"
        state.default_path = ctx.paths.transcripts_dir / name
    return state.default_path


def start(ctx: Context, path_arg: str) -> None:
    state = state_of(ctx)
    path = Path(path_arg).expanduser() if path_arg else default_path(ctx, state)
    # An existing file is appended to (JSON Lines stay valid) with its mode unchanged; a
    # symbolic link or anything but a regular file is refused (open_private).
    existed = os.path.lexists(path)
    record_to(ctx, path)
    ctx.print(
        f"logging every frame to {path}" + (" (appending to the existing file)" if existed else "")
    )


def record_to(ctx: Context, path: Path) -> Recorder:
    """Start the recorder, writing to ``path`` (``/log on``; ``--record`` passes this
    plugin's context, ``shell.context("log")``).

    The file starts with a header line (:func:`header_record`); appending to an existing
    recording adds another header, which readers accept as the start of a new segment.
    """
    state = state_of(ctx)
    if state.recorder is not None:
        raise CommandError(f"already logging to {state.recorder.path}; /log off first")
    try:
        file = open_private(path, "a", tighten_existing=False)
    except OSError as exc:
        raise CommandError(f"cannot open {path}: {exc.strerror or exc}") from None
    recorder = Recorder(path, file, scrub=ctx.scrub)
    session = ctx.session
    header = header_record(f"{session.org}/{session.head}", session.base_url)
    file.write(json_line(header) + "\n")
    file.flush()
    if not ctx.plugins.add(recorder, RECORDER):
        file.close()
        raise CommandError("could not start the transcript recorder")
    state.recorder = recorder
    state.last_path = path
    return recorder


def stop(ctx: Context, quiet: bool = False) -> None:
    state = state_of(ctx)
    recorder = state.recorder
    if recorder is None:
        if not quiet:
            ctx.print("not logging")
        return
    ctx.plugins.remove(RECORDER)
    recorder.close()
    state.recorder = None
    if not quiet:
        ctx.print(f"logging off ({recorder.lines} frame(s) written to {recorder.path})")


def _current(ctx: Context) -> Path:
    path = state_of(ctx).last_path
    if path is None:
        raise CommandError("no transcript yet: /log on starts one")
    return path


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every complete frame line of a transcript (a torn last line and headers skipped)."""
    records = []
    try:
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                if isinstance(obj, dict) and "format" not in obj:  # not a header line
                    records.append(obj)
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from None
    return records


def summary(record: dict[str, Any], width: int = 100) -> str:
    when = str(record.get("time", ""))[11:19]
    arrow = {"out": "->", "meta": "--"}.get(str(record.get("direction")), "<-")
    payload = record.get("payload")
    text = ""
    if isinstance(payload, dict) and isinstance(payload.get("text"), str):
        text = payload["text"]
    else:
        text = json.dumps(payload, ensure_ascii=False)
    from unith_shell.render import escape_text

    line = f"{when} {arrow} {record.get('event') or '-'}: {escape_text(text)}"
    return line if len(line) <= width else line[: width - 3] + "..."


def show(ctx: Context, arg: str) -> None:
    try:
        count = int(arg) if arg else 10
    except ValueError:
        raise CommandError("usage: /log show [N]") from None
    path = _current(ctx)
    tail: deque[dict[str, Any]] = deque(read_records(path), maxlen=max(1, count))
    if not tail:
        ctx.print(f"{path} is empty")
    for record in tail:
        ctx.print(summary(record))


def to_markdown(records: list[dict[str, Any]], title: str) -> str:
    """A readable Markdown version of a transcript: who said what, other events in italics."""
    from unith_shell.protocol import Echo, ProtocolError, ResponsePart, parse_object

    lines = [f"# {title}", ""]
    speaking: tuple[str, Any] | None = None  # (head, input_message_id) of the reply being built
    user_id: str | None = None
    for record in records:
        payload = record.get("payload")
        event = record.get("event")
        head = str(record.get("head", "head"))
        when = str(record.get("time", ""))[11:19]
        if not isinstance(payload, dict):
            continue
        if record.get("direction") == "meta":
            lines += [f"_{when} disconnected_", ""]
            speaking = None
            continue
        if record.get("direction") == "out":
            speaking = None
            if event == "handshake":
                lines += [f"_{when} connected to {head}_", ""]
            elif event == "text":
                user_id = str(payload.get("user_id", "")) or user_id
                lines += [f"**You** ({when}): {payload.get('text', '')}", ""]
            else:
                lines += [f"_{when} sent {event or 'a frame'}_", ""]
            continue
        try:
            parsed = parse_object(payload, user_id=user_id)
        except ProtocolError:
            lines += [f"_{when} received an unreadable frame_", ""]
            continue
        if isinstance(parsed, Echo):
            continue  # the server's copy of our own message
        if isinstance(parsed, ResponsePart):
            if not parsed.text:
                continue
            key = (head, parsed.input_message_id)
            if speaking == key:
                lines[-1:] = [parsed.text, ""]
            else:
                name = parsed.username or head.rsplit("/", 1)[-1]
                lines += [f"**{name}** ({when}): {parsed.text}", ""]
            speaking = key
        else:
            lines += [f"_{when} received {parsed.event}_", ""]
            speaking = None
    # A human-readable file: every frame text, name and id passes the gate, as on screen.
    return sanitize_block("\n".join(lines).rstrip("\n") + "\n")


def export(ctx: Context, arg: str) -> None:
    """``export md [--force] PATH``: a new file (0600); an existing one only with ``--force``.

    With ``--force`` an existing regular file is rewritten in place and keeps its mode; a
    symbolic link is never followed.
    """
    fmt, _, dest = arg.partition(" ")
    dest = dest.strip()
    force = dest.startswith("--force ")
    if force:
        dest = dest[len("--force ") :].strip()
    if fmt != "md" or not dest or dest == "--force":
        raise CommandError("usage: /log export md [--force] PATH")
    source = _current(ctx)
    target = Path(dest).expanduser()
    text = to_markdown(read_records(source), f"unith-shell transcript {source.stem}")
    try:
        with open_private(target, "w" if force else "x", tighten_existing=False) as fh:
            fh.write(text)
    except FileExistsError:
        raise CommandError(f"{target} exists; /log export md --force PATH replaces it") from None
    except OSError as exc:
        raise CommandError(f"cannot write {target}: {exc.strerror or exc}") from None
    ctx.print(f"exported {source} to {target}")


def log_command(ctx: Context, arg: str) -> None:
    action, _, rest = arg.strip().partition(" ")
    rest = rest.strip()
    if action == "on":
        start(ctx, rest)
    elif action == "off" and not rest:
        stop(ctx)
    elif action == "show":
        show(ctx, rest)
    elif action in ("path", "") and not rest:
        recorder = state_of(ctx).recorder
        ctx.print(str(recorder.path) if recorder else "not logging (/log on starts a transcript)")
    elif action == "export":
        export(ctx, rest)
    else:
        raise CommandError(USAGE)


def _complete(ctx: Context, text: str) -> list[str]:
    return ["on", "off", "show", "path", "export", "md", "--force"]


@hookimpl
def register_commands(register: Any) -> None:
    register(
        "log",
        log_command,
        help="Transcript of every frame (JSON Lines, secrets redacted); export to Markdown",
        usage="on [PATH] | off | show [N] | path | export md [--force] PATH",
        complete=_complete,
    )


@hookimpl
def shell_exit(ctx: Context) -> None:
    stop(ctx, quiet=True)
