"""unith-shell: an interactive terminal client for Unith's talking-head chat API."""

__version__ = "0.1.0"
