"""The one gate every outside string passes before it reaches a terminal or a file.

A hostile server (or anyone on the path of a plain ``http://`` URL) controls frame texts, head
names, ids, URLs, close reasons and error details. Printed raw, an ESC sequence can set the
terminal title, clear the screen or write to the clipboard (OSC 52); a C1 control (U+009B is a
one-byte CSI on some terminals) does the same; bidi and zero-width format characters make text
read differently from what it is. So every such character is made *visible*, never passed
through and never silently dropped (a person should see that something odd was sent).

- :func:`sanitize` is for one-line text (notices, names, ids, URLs, error details).
- :func:`sanitize_block` keeps newlines and tabs, for multi-line reply text.
- :func:`json_line` serialises for machine-readable output (``--json``, JSON Lines
  transcripts): the same characters are written as ``\\uXXXX`` escapes, which is still valid
  JSON and decodes back to the original string.

Lone surrogates (JSON allows ``"\\ud800"``) are escaped as well: printed raw they make Python's
UTF-8 encoder raise, which would crash a print path.
"""

from __future__ import annotations

import json
import re
from typing import Any

# C0 controls, DEL, C1 controls (U+0080-U+009F); ESC is U+001B, inside C0.
_CONTROLS = "\x00-\x1f\x7f-\x9f"
# Bidi embeddings/overrides/isolates, zero-width and direction marks, BOM, the Arabic letter
# mark, the line/paragraph separators (some terminals move the cursor on them), invisible
# operators (U+2060-U+2064), and lone surrogates.
_FORMAT = "\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff\ud800-\udfff"

_UNSAFE = re.compile(f"[{_CONTROLS}{_FORMAT}]")
_UNSAFE_IN_BLOCK = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_FORMAT}]")
# What json.dumps(ensure_ascii=False) leaves raw: it already escapes U+0000-U+001F.
_UNSAFE_IN_JSON = re.compile(f"[\x7f-\x9f{_FORMAT}]")
# json.dumps(obj, ensure_ascii=False), with the encoder made once instead of per call.
_JSON_ENCODER = json.JSONEncoder(ensure_ascii=False)


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def sanitize(text: str) -> str:
    """``text`` on one line with every control, ESC, C1 and bidi/zero-width character visible.

    Printable text (including non-ASCII letters and emoji) is returned unchanged.
    """
    if _UNSAFE.search(text) is None:  # the common case: no copy, no substitution
        return text
    return _UNSAFE.sub(_visible, text)


def sanitize_block(text: str) -> str:
    """Like :func:`sanitize`, but newlines and tabs stay (multi-line reply text).

    ``\\r\\n`` becomes ``\\n``; a lone ``\\r`` (which would overwrite the line) is made visible.
    """
    if "\r\n" in text:
        text = text.replace("\r\n", "\n")
    if _UNSAFE_IN_BLOCK.search(text) is None:
        return text
    return _UNSAFE_IN_BLOCK.sub(_visible, text)


def json_line(obj: Any) -> str:
    """One line of JSON with every unsafe character as a ``\\uXXXX`` escape.

    Non-ASCII text stays readable (``ensure_ascii=False``); only the characters
    :func:`sanitize` would make visible are escaped, so the line is safe to ``cat``.
    """
    text = _JSON_ENCODER.encode(obj)
    if _UNSAFE_IN_JSON.search(text) is None:
        return text
    return _UNSAFE_IN_JSON.sub(_json_escape, text)
