"""The package version, in its own module so that every layer can read it without importing upward."""

__version__ = "0.2.0"
