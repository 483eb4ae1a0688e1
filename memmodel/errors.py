"""Error types shared by every layer. Each names what the user must fix (file, line or key)."""

from __future__ import annotations


class MemmodelError(Exception):
    """Base of every error memmodel reports to a user without a traceback."""


class TraceError(MemmodelError):
    """A trace cannot be read: names the file, the line number, the text and what was expected."""


class ConfigError(MemmodelError):
    """A config is invalid: names the file, the key and the allowed values."""


class OutOfMemoryError(MemmodelError):
    """The modelled guest or host memory ran out (MODEL.md section 2): names the side."""
