"""URLs as the shell shows and trusts them: display without passwords, origins, loopback.

Standard library only (the ``--help`` path may import it).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit, urlunsplit

from unith_shell.sanitize import sanitize

#: What replaces the password of a ``user:pass@host`` URL on display.
MASK = "***"


def display_url(url: str) -> str:
    """``url`` safe to print: the password of ``user:pass@`` masked, controls made visible.

    The one helper for every URL that reaches a terminal, a log line or a file (errors,
    ``/status``, warnings, transcript headers). A URL that cannot be parsed is still masked
    from the last ``@`` of its authority on a best-effort basis.
    """
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
    except ValueError:
        return sanitize(_mask_unparsed(url))
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, colon, _password = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{hostport}" if colon else f"{user}@{hostport}"
        url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return sanitize(url)


def _mask_unparsed(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority_end = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    authority, tail = rest[:authority_end], rest[authority_end:]
    if "@" not in authority:
        return url
    userinfo, _, hostport = authority.rpartition("@")
    user = userinfo.partition(":")[0]
    return f"{scheme}://{user}:{MASK}@{hostport}{tail}"


_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port filled in; raises ValueError."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port if parts.port is not None else _DEFAULT_PORTS.get(scheme)
    return scheme, host, port


def same_origin(a: str, b: str) -> bool:
    """Same scheme, host and port (a change of scheme, even to https, is another origin)."""
    try:
        return origin(a) == origin(b)
    except ValueError:
        return False


def is_loopback(url: str) -> bool:
    """The URL's host is ``localhost`` or a loopback address (127.0.0.0/8, ``::1``)."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False
    return is_loopback_host(host)


def is_loopback_host(host: str) -> bool:
    """``host`` (a name or an address, ``[::1]`` too) is ``localhost`` or a loopback address:
    only this machine reaches it. A host name may resolve to anything: not loopback."""
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def plain_http_warning(url: str) -> str | None:
    """The one-line warning for an ``http://`` base URL to a host other than this machine."""
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        return None
    if scheme != "http" or is_loopback(url):
        return None
    return (
        f"{display_url(url)} is plain http: the password and api key travel unencrypted "
        "(use https://)"
    )
