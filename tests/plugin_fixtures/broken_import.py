"""Fails at import time."""

raise RuntimeError("broken_import exploded while importing")
