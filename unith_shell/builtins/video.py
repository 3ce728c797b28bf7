"""``/video [--check | --open | --download [--force] PATH]``: the current head's idle video.

Without an option it prints the idle video URL (``videos`` -> ``video_id`` -> ``idle``).
``--check`` asks for the headers only (a ``HEAD`` request) and reports type and size;
``--open`` hands an ``http``/``https`` URL to the system's default handler without waiting
for it, in an environment without ``UNITH_*`` variables;
``--download PATH`` streams the body to ``PATH`` with progress lines printed above the prompt.
A folder gets the URL's file name, sanitised (see :func:`safe_file_name`). An existing file
is never replaced unless ``--force`` is given: the server must not pick a local file to
overwrite. The body goes to a temporary file created exclusively next to the target (mode
0666 minus the umask, like any file the user makes) and is renamed into place at the end.

A bundled plugin like any other: it uses only :class:`~unith_shell.context.Context`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import secrets
import shutil
import subprocess
import sys
import time
import unicodedata
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from unith_shell.commands import CommandError
from unith_shell.context import Context
from unith_shell.hookspecs import hookimpl
from unith_shell.sanitize import sanitize

USAGE = "usage: /video [--check | --open | --download [--force] PATH]"
#: Print a progress line at most this often (seconds), plus one at the end.
PROGRESS_EVERY = 0.5


def human_size(size: int | None) -> str:
    if size is None:
        return "unknown size"
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit} ({size} bytes)"
        value /= 1024
    return f"{size} bytes"  # pragma: no cover


def _client(ctx: Context) -> Any:
    from unith_shell.api import shared_client

    return shared_client(not ctx.settings.insecure)


def _http_error(what: str, exc: Exception) -> CommandError:
    import httpx

    if isinstance(exc, httpx.TimeoutException):
        return CommandError(f"{what}: no answer in time")
    if isinstance(exc, httpx.HTTPStatusError):
        return CommandError(f"{what}: HTTP {exc.response.status_code}")
    return CommandError(f"{what}: {type(exc).__name__}: {' '.join(str(exc).split())[:120]}")


async def check(ctx: Context, url: str) -> tuple[str, int | None]:
    """``HEAD`` the URL: (content type, size in bytes or None). No body is downloaded."""
    import httpx

    client = _client(ctx)
    timeout = ctx.settings.rest_timeout
    try:
        # httpx's timeout is per read: a server dripping a header byte at a time would never
        # hit it, so the whole check has one overall deadline too.
        async with asyncio.timeout(timeout):
            response = await client.head(url, timeout=timeout)
            if response.status_code in (405, 501):
                # No HEAD support: read the headers of a GET and close before the body.
                async with client.stream("GET", url, timeout=timeout) as streamed:
                    response = streamed
        response.raise_for_status()
    except TimeoutError:
        raise CommandError(f"check: no complete answer within {timeout:g} s") from None
    except httpx.InvalidURL as exc:
        raise CommandError(f"check: not a usable URL ({exc})") from None
    except httpx.HTTPError as exc:
        raise _http_error("check", exc) from None
    length = response.headers.get("content-length")
    size = int(length) if length and length.isdigit() else None
    return response.headers.get("content-type", "unknown type"), size


#: Openers that take the URL as their only argument. Neither gets ``--``: xdg-open rejects it
#: ("unexpected option '--'") and macOS ``open`` does not document it. None is needed, because
#: :func:`openable_url` lets only URLs that begin with ``http:``/``https:`` through, and an
#: argument that does not begin with ``-`` is never read as an option.
OPENERS = {"darwin": "open"}
DEFAULT_OPENER = "xdg-open"


def openable_url(url: str) -> str:
    """``url`` if it may go to the system opener: http(s), a host, no spaces or controls."""
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise CommandError("open: only http and https URLs are opened; open it yourself")
    if any(c.isspace() or unicodedata.category(c).startswith("C") for c in url):
        raise CommandError("open: the URL holds spaces or control characters; not opened")
    return url


def opener_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for the opener: ours minus every ``UNITH_*`` variable (secrets)."""
    source = os.environ if env is None else env
    return {k: v for k, v in source.items() if not k.upper().startswith("UNITH_")}


def launch(url: str) -> None:
    """Open ``url`` (checked by :func:`openable_url`) with the default handler, not waiting."""
    url = openable_url(url)
    if sys.platform == "win32":  # pragma: no cover - not tested on Windows
        os.startfile(url)  # type: ignore[attr-defined]
        return
    opener = shutil.which(OPENERS.get(sys.platform, DEFAULT_OPENER))
    if opener is not None:
        # Detached, silent: a handler that writes to the terminal would corrupt the prompt.
        subprocess.Popen(
            [opener, url],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env=opener_env(),
        )
        return
    import webbrowser

    try:
        browser = webbrowser.get()
    except webbrowser.Error:
        raise OSError("no default handler found; open the URL yourself") from None
    if not isinstance(browser, webbrowser.BackgroundBrowser):
        # A console browser would fight the prompt for the terminal.
        raise OSError("no graphical handler found; open the URL yourself")
    # webbrowser starts its child with our environment: drop the secrets there too.
    with _without_unith_env():
        browser.open(url)


@contextlib.contextmanager
def _without_unith_env() -> Iterator[None]:
    saved = {k: v for k, v in os.environ.items() if k.upper().startswith("UNITH_")}
    for name in saved:
        del os.environ[name]
    try:
        yield
    finally:
        os.environ.update(saved)


#: Longest file name taken from a URL (bytes of UTF-8); most file systems allow 255.
MAX_NAME_BYTES = 200


def safe_file_name(url: str, head: str) -> str:
    """The file name for a download into a folder: the URL's last path segment, sanitised.

    No path separators, no control or format characters, no leading dots or spaces, at most
    :data:`MAX_NAME_BYTES`; what is left empty (or ``..``) falls back to ``idle-<head>.mp4``.
    """
    try:
        raw = unquote(urlsplit(url).path)
    except ValueError:
        raw = ""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if not unicodedata.category(c).startswith("C"))
    name = name.lstrip(". ").rstrip()
    while len(name.encode()) > MAX_NAME_BYTES:
        name = name[:-1]
    if not name:
        head_part = "".join(c if c.isalnum() or c in "-_" else "_" for c in head) or "head"
        name = f"idle-{head_part}.mp4"
    return name


def target_path(path: str, url: str, head: str = "head") -> Path:
    """Where ``--download PATH`` writes: PATH, or PATH/<safe name from the URL> for a folder."""
    target = Path(path).expanduser()
    if target.is_dir() or path.endswith(("/", os.sep)):
        target = target / safe_file_name(url, head)
    return target


def _create_temp(target: Path) -> tuple[Path, int]:
    """A new file next to ``target``, created exclusively (never an existing file or link)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    flags |= getattr(os, "O_NOFOLLOW", 0)
    for _ in range(20):
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.part")
        try:
            # 0666 minus the umask: a download gets the user's normal file mode.
            return tmp, os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
    raise OSError(errno.EEXIST, "no free temporary name", str(target))


def _move_into_place(tmp: Path, target: Path, force: bool) -> None:
    """Rename ``tmp`` to ``target``; without ``force`` fail if ``target`` exists (no race)."""
    if force:
        os.replace(tmp, target)
        return
    try:
        os.link(tmp, target)  # fails if target exists, atomically: nothing is overwritten
    except FileExistsError:
        raise CommandError(f"download: {target} exists; add --force to replace it") from None
    except OSError:
        # No hard links on this file system: check, then rename (a small window remains).
        if os.path.lexists(target):
            raise CommandError(f"download: {target} exists; add --force to replace it") from None
        os.replace(tmp, target)
        return
    os.unlink(tmp)


async def download(ctx: Context, url: str, path: str, force: bool = False) -> tuple[Path, int]:
    """Stream ``url`` to ``path`` via an exclusive temporary file, renamed at the end.

    An existing target is refused before anything is fetched, and again at the rename.
    """
    import httpx

    target = target_path(path, url, ctx.session.head)
    if not target.parent.is_dir():
        raise CommandError(f"download: folder {target.parent} does not exist")
    from unith_shell import api

    if target.is_dir():
        raise CommandError(f"download: {target} is a folder")
    if not force and os.path.lexists(target):
        raise CommandError(f"download: {target} exists; add --force to replace it")
    written = 0
    total: int | None = None
    last = time.monotonic()

    def progress(done: int, size: int | None) -> None:
        nonlocal last, total
        total = size
        now = time.monotonic()
        if now - last >= PROGRESS_EVERY:
            last = now
            ctx.print(progress_line(done, size))

    try:
        tmp, fd = _create_temp(target)
    except OSError as exc:
        raise CommandError(f"download: cannot write {target}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            # Bounded by an overall deadline and a size cap, whatever the server does.
            written = await api.download(
                url,
                out.write,
                verify=not ctx.settings.insecure,
                read_timeout=ctx.settings.rest_timeout,
                deadline=ctx.settings.download_timeout,
                max_bytes=ctx.settings.max_download_size,
                progress=progress,
            )
        ctx.print(progress_line(written, total))
        _move_into_place(tmp, target, force)
    except api.DownloadError as exc:
        raise CommandError(str(exc)) from None
    except httpx.HTTPError as exc:
        raise _http_error("download", exc) from None
    except OSError as exc:
        raise CommandError(f"download: cannot write {target}: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return target, written


def progress_line(done: int, total: int | None, width: int = 30) -> str:
    if not total:
        return f"  downloaded {human_size(done)}"
    fraction = min(1.0, done / total)
    bar = "#" * int(fraction * width)
    return f"  [{bar:<{width}}] {fraction * 100:5.1f}%  {done}/{total} bytes"


def _download_args(rest: str) -> tuple[str, bool]:
    """``[--force] PATH`` or ``PATH --force`` -> (PATH, force)."""
    rest = rest.strip()
    force = False
    if rest == "--force":
        rest = ""
    elif rest.startswith("--force "):
        rest, force = rest[len("--force ") :].strip(), True
    elif rest.endswith(" --force"):
        rest, force = rest[: -len(" --force")].strip(), True
    if not rest:
        raise CommandError("usage: /video --download [--force] PATH")
    return rest, force


async def video_command(ctx: Context, arg: str) -> None:
    words = arg.split(maxsplit=1)
    option = words[0] if words else ""
    if option not in ("", "--check", "--open", "--download"):
        raise CommandError(USAGE)
    if option in ("--check", "--open") and len(words) > 1:
        raise CommandError(USAGE)
    path, force = (
        _download_args(words[1] if len(words) > 1 else "")
        if option == "--download"
        else ("", False)
    )
    session = ctx.session
    url = await session.api.idle_video_url(session.org, session.head)
    ctx.print(sanitize(url))  # server text, one line: no escape sequence, no line of its own
    if option == "--check":
        content_type, size = await check(ctx, url)
        ctx.print(f"  type {sanitize(content_type)}, size {human_size(size)}")
    elif option == "--open":
        try:
            launch(url)
        except OSError as exc:
            raise CommandError(f"open: {exc.strerror or exc}") from None
        ctx.print("  opened with the system's default handler")
    elif option == "--download":
        target, size = await download(ctx, url, path, force)
        ctx.print(f"  saved {human_size(size)} to {sanitize(str(target))}")


def _complete(ctx: Context, text: str) -> list[str]:
    return ["--check", "--open", "--download", "--force"]


@hookimpl
def register_commands(register: Any) -> None:
    register(
        "video",
        video_command,
        help="The head's idle video: URL, --check headers, --open, --download [--force] PATH",
        usage="[--check | --open | --download [--force] PATH]",
        complete=_complete,
    )
