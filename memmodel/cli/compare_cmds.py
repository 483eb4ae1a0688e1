"""CLI commands of this layer (registered on :data:`memmodel.cli.app`)."""

from __future__ import annotations

from memmodel.cli import app as app  # noqa: F401
