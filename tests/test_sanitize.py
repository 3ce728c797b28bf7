"""The one gate for outside strings: properties over any text, and the characters it names."""

from __future__ import annotations

import json
import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from unith_shell.sanitize import json_line, sanitize, sanitize_block

BIDI_AND_ZERO_WIDTH = [
    *map(chr, range(0x202A, 0x202F)),
    *map(chr, range(0x2066, 0x206A)),
    *map(chr, range(0x200B, 0x2010)),
    "\ufeff",
]
C0 = [chr(c) for c in range(0x20)] + ["\x7f"]
C1 = [chr(c) for c in range(0x80, 0xA0)]
FORBIDDEN = set(C0) | set(C1) | set(BIDI_AND_ZERO_WIDTH)


def _printable(ch: str) -> bool:
    return ch not in FORBIDDEN and unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Zl", "Zp")


@given(st.text())
def test_no_control_or_bidi_character_survives(text: str) -> None:
    out = sanitize(text)
    assert not FORBIDDEN & set(out)
    assert all(unicodedata.category(ch) != "Cs" for ch in out)
    out.encode("utf-8")  # never a lone surrogate that would make print() raise


@given(st.text())
def test_block_keeps_only_newline_and_tab(text: str) -> None:
    out = sanitize_block(text)
    assert not (FORBIDDEN - {"\n", "\t"}) & set(out)
    assert out.count("\n") == text.count("\n")  # a lone \r is made visible, \r\n becomes \n


@given(st.text(alphabet=st.characters(exclude_categories=("Cc", "Cf", "Cs", "Zl", "Zp"))))
def test_printable_text_is_unchanged(text: str) -> None:
    assert all(map(_printable, text))
    assert sanitize(text) == text
    assert sanitize_block(text) == text


@given(st.text())
def test_json_line_escapes_and_round_trips(text: str) -> None:
    line = json_line({"text": text})
    assert "\n" not in line
    assert not FORBIDDEN & set(line)
    assert json.loads(line) == {"text": text}


def test_each_named_character_is_visible_not_dropped() -> None:
    for ch in sorted(FORBIDDEN):
        out = sanitize(f"a{ch}b")
        assert out.startswith("a\\") and out.endswith("b"), (hex(ord(ch)), out)
        assert f"{ord(ch):02x}" in out
    # The attacks the issue names: title, clear screen, OSC 52 clipboard, a one-byte CSI.
    assert sanitize("\x1b]0;pwned\x07") == "\\x1b]0;pwned\\x07"
    assert sanitize("\x1b[2J") == "\\x1b[2J"
    assert sanitize("\x1b]52;c;cm0gLXJmIH4=\x07") == "\\x1b]52;c;cm0gLXJmIH4=\\x07"
    assert sanitize("\x9b2J") == "\\x9b2J"
    assert sanitize("abc\u202edef") == "abc\\u202edef"
    assert sanitize_block("one\r\ntwo\rthree") == "one\ntwo\\x0dthree"
