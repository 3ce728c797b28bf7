"""A faithful local Unith server (PROTOCOL.md §9): REST login, head info, videos, and the v2
switch socket, with demo heads (``unith/aiko``, ``unith/kai``, ``unith/nova``,
``unith/quiet``) and scripted faults (``faults/<name>`` or :meth:`LocalServer.set_fault`).

The server shares only :mod:`unith_shell.protocol` with the client.
"""

from .app import LocalServer
from .catalog import HEADS
from .config import ServerConfig
from .faults import FAULTS, make_fault
from .run import serve_forever

__all__ = ["FAULTS", "HEADS", "LocalServer", "ServerConfig", "make_fault", "serve_forever"]
