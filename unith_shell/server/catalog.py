"""Every head the server knows: the demo heads (org ``unith``) and one fault head per fault
script (org ``faults``).

``faults/<name>`` runs the fault script ``<name>`` (see :mod:`.faults`) with its default
parameters on every connection, so a person can try each fault from the CLI. This module sits
above both :mod:`.heads` and :mod:`.faults`, so that neither imports the other.
"""

from __future__ import annotations

from .faults import FAULTS
from .heads import DEMO_HEADS, Head
from .personas import plain

FAULT_HEADS: tuple[Head, ...] = tuple(
    Head(
        org="faults",
        head_id=name,
        alias=f"Fault {name}",
        language="en-US",
        persona=plain,
        greetings=(f"Fault head '{name}': {fault.doc}",),
        fault=name,
    )
    for name, fault in FAULTS.items()
)

HEADS: dict[str, Head] = {head.key: head for head in (*DEMO_HEADS, *FAULT_HEADS)}


def find_head(org: str, head_id: str) -> Head | None:
    return HEADS.get(f"{org}/{head_id}")
