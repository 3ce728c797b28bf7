"""``unith-shell --help`` at :data:`unith_shell.cli.HELP_WIDTH` columns, pre-rendered for
``_entry`` (a test keeps it equal to ``build_parser().format_help()``).

Render it again after changing a flag: ``python -m unith_shell._help --write``. argparse's
layout differs between Python versions (3.13 shows a metavar once per option, 3.14 adds
colour), so the text is used only on the version it was rendered with (:data:`PYTHON`);
elsewhere ``--help`` is argparse's own, as for any other width.
"""

#: The Python (major, minor) whose argparse rendered :data:`HELP`.
PYTHON = (3, 11)

HELP = (
    "usage: unith-shell [-h] [--version] [--base-url URL] [--org ORG] [--head HEAD]\n"
    "                   [--api-key KEY] [--text-only] [--timeout SECONDS]\n"
    "                   [--prompt PROMPT] [--max-parts N] [--insecure] [--local]\n"
    "                   [--json] [-m TEXT] [--profile NAME] [--no-history]\n"
    "                   [--no-plugins] [--plugin MODULE_OR_PATH]\n"
    "                   [--plugins-dir DIR] [--record FILE] [--recordings DIR]\n"
    "                   [--speed FACTOR] [--match {order,text,similar}]\n"
    "\n"
    "Chat with a Unith digital human from the terminal.\n"
    "\n"
    "options:\n"
    "  -h, --help            show this help message and exit\n"
    "  --version             show program's version number and exit\n"
    "  --base-url URL        REST base URL (default: Unith's chat-origin host)\n"
    "  --org ORG             organisation id (default: unith)\n"
    "  --head HEAD           head id (default: aiko)\n"
    "  --api-key KEY         the organisation's public api key (prefer\n"
    "                        UNITH_API_KEY or the config file)\n"
    "  --text-only           ask for text-only replies\n"
    "  --timeout SECONDS     per-frame / per-turn timeout (default: 30)\n"
    "  --prompt PROMPT       prompt template; {head}, {org}, {alias} (default:\n"
    "                        '{head}> ')\n"
    "  --max-parts N         most parts accepted in one reply, and the highest\n"
    "                        part_order + 1 (default: 10000)\n"
    "  --insecure            do not verify TLS certificates (prints a warning)\n"
    "  --local               start the built-in local Unith server and talk to it\n"
    "                        (works offline)\n"
    "  --json                pipe mode: print one JSON object per event\n"
    "  -m TEXT, --message TEXT\n"
    "                        send TEXT (repeatable), print the replies and exit\n"
    "  --profile NAME        use [profiles.NAME] from the config file\n"
    "  --no-history          do not read or write the history file\n"
    "  --no-plugins          load bundled plugins only\n"
    "  --plugin MODULE_OR_PATH\n"
    "                        load a plugin module or .py file (repeatable)\n"
    "  --plugins-dir DIR     also load every *.py in DIR (repeatable)\n"
    "  --record FILE         -m and pipe mode: record every frame to FILE (see\n"
    "                        docs/recordings.md)\n"
    "  --recordings DIR      serve each recording in DIR as the head\n"
    "                        recorded/<name>\n"
    "  --speed FACTOR        recorded heads: recorded delays times FACTOR (1; 0 =\n"
    "                        no delays)\n"
    "  --match {order,text,similar}\n"
    "                        recorded heads: match a message to a recorded turn by\n"
    "                        order, text or similar (order)\n"
    "\n"
    "Other commands: 'unith-shell serve [--host H] [--port N] [--recordings DIR]'\n"
    "runs the local Unith server; 'unith-shell plugins [--json]' lists plugins;\n"
    "'unith-shell test PATH...' runs conversation scenarios (docs/testing.md);\n"
    "'unith-shell replay FILE' sends a recording again and compares; 'unith-shell\n"
    "diff A B' compares two recordings. Without a terminal on stdin (or with -m),\n"
    "each input line is a message and replies go to stdout.\n"
)

if __name__ == "__main__":
    import json
    import os
    import sys
    from pathlib import Path

    os.environ["COLUMNS"] = "80"
    from unith_shell.cli import build_parser

    text = build_parser().format_help()
    if sys.argv[1:] == ["--write"]:
        path = Path(__file__)
        source = path.read_text(encoding="utf-8")
        start = source.index("\nPYTHON = ") + 1
        end = source.index("\n\nif __name__", start)
        # JSON strings are Python literals too, quoted the way ruff formats them.
        lines = "".join(
            f"    {json.dumps(line, ensure_ascii=False)}\n"
            for line in text.splitlines(keepends=True)
        )
        version = f"PYTHON = {tuple(sys.version_info[:2])!r}\n\n"
        rendered = f"{version}HELP = (\n{lines})"
        path.write_text(source[:start] + rendered + source[end:], encoding="utf-8")
    else:
        sys.stdout.write(text)
