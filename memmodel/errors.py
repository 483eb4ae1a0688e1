"""Error types shared by every layer. Each names what the user must fix (file, line or key)."""

from __future__ import annotations

#: Longest piece of user input quoted in a message (characters); longer text is cut in the middle.
MAX_QUOTED_CHARS = 200


class MemmodelError(Exception):
    """Base of every error memmodel reports to a user without a traceback."""


class TraceError(MemmodelError):
    """A trace cannot be read: names the file, the line number, the text and what was expected."""


class ConfigError(MemmodelError):
    """A config is invalid: names the file, the key and the allowed values."""


class ConfigKeyError(ConfigError):
    """A config names a key that does not exist (a misspelling): found before any replay starts."""


class OutOfMemoryError(MemmodelError):
    """The modelled guest or host memory ran out (docs/model.md section 2): names the side and the config.

    The engine knows the config's name; the CLI, which knows the file that was passed, appends it.
    """


class OutputError(MemmodelError):
    """An output file cannot be written (missing directory, read-only, disk full...): names the path."""


def shorten(text: str, limit: int = MAX_QUOTED_CHARS) -> str:
    """``text`` cut to about ``limit`` characters (head ... tail) so a huge bad token never floods a message.

    Args:
        text: any user-supplied text.
        limit: characters kept (head and tail together); the result says how many were cut.
    """
    if len(text) <= limit:
        return text
    head = limit * 2 // 3
    tail = limit - head
    return f"{text[:head]}...[{len(text) - limit:,} characters cut]...{text[-tail:]}"
