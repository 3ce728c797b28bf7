"""``/video [--check | --open | --download PATH]``: the current head's idle video.

Without an option it prints the idle video URL (``videos`` -> ``video_id`` -> ``idle``).
``--check`` asks for the headers only (a ``HEAD`` request) and reports type and size;
``--open`` hands the URL to the system's default handler without waiting for it;
``--download PATH`` streams the body to ``PATH`` (a folder gets the URL's file name) with
progress lines printed above the prompt.

A bundled plugin like any other: it uses only the public hook API.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from unith_shell.commands import CommandError, Context
from unith_shell.hookspecs import hookimpl
from unith_shell.render import escape_text

USAGE = "usage: /video [--check | --open | --download PATH]"
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
        response = await client.head(url, timeout=timeout)
        if response.status_code in (405, 501):
            # No HEAD support: read the headers of a GET and close before the body.
            async with client.stream("GET", url, timeout=timeout) as streamed:
                response = streamed
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise _http_error("check", exc) from None
    length = response.headers.get("content-length")
    size = int(length) if length and length.isdigit() else None
    return response.headers.get("content-type", "unknown type"), size


def launch(url: str) -> None:
    """Open ``url`` with the system's default handler, without waiting for it."""
    if sys.platform == "win32":  # pragma: no cover - not tested on Windows
        os.startfile(url)  # type: ignore[attr-defined]
        return
    opener = shutil.which("open" if sys.platform == "darwin" else "xdg-open")
    if opener is not None:
        # Detached, silent: a handler that writes to the terminal would corrupt the prompt.
        subprocess.Popen(
            [opener, url],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
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
    browser.open(url)


def target_path(path: str, url: str) -> Path:
    """Where ``--download PATH`` writes: PATH, or PATH/<file name of the URL> for a folder."""
    target = Path(path).expanduser()
    if target.is_dir() or path.endswith(("/", os.sep)):
        name = Path(unquote(urlsplit(url).path)).name or "idle.mp4"
        target = target / name
    return target


async def download(ctx: Context, url: str, path: str) -> tuple[Path, int]:
    """Stream ``url`` to ``path`` (via a temporary file, renamed at the end)."""
    import httpx

    target = target_path(path, url)
    if not target.parent.is_dir():
        raise CommandError(f"download: folder {target.parent} does not exist")
    from unith_shell import api

    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
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
        with tmp.open("wb") as out:
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
        tmp.replace(target)
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


async def video_command(ctx: Context, arg: str) -> None:
    words = arg.split(maxsplit=1)
    option = words[0] if words else ""
    if option not in ("", "--check", "--open", "--download"):
        raise CommandError(USAGE)
    if option == "--download" and len(words) < 2:
        raise CommandError("usage: /video --download PATH")
    if option in ("--check", "--open") and len(words) > 1:
        raise CommandError(USAGE)
    opts = ctx.session.options
    url = await ctx.session.api.idle_video_url(opts.org, opts.head)
    ctx.print(escape_text(url))  # server text: no escape sequences reach the terminal
    if option == "--check":
        content_type, size = await check(ctx, url)
        ctx.print(f"  type {escape_text(content_type)}, size {human_size(size)}")
    elif option == "--open":
        try:
            launch(url)
        except OSError as exc:
            raise CommandError(f"open: {exc.strerror or exc}") from None
        ctx.print("  opened with the system's default handler")
    elif option == "--download":
        target, size = await download(ctx, url, words[1].strip())
        ctx.print(f"  saved {human_size(size)} to {target}")


def _complete(ctx: Context, text: str) -> list[str]:
    return ["--check", "--open", "--download"]


@hookimpl
def register_commands(register: Any) -> None:
    register(
        "video",
        video_command,
        help="The head's idle video: URL, --check headers, --open, --download PATH",
        usage="[--check | --open | --download PATH]",
        complete=_complete,
    )
