"""What stops an import before any row is looked at (a row's own problems are ``RowError``s)."""

from __future__ import annotations


class ImportSetupError(ValueError):
    """The mapping file or the export as a whole cannot be used; nothing is imported."""


class MappingError(ImportSetupError):
    """The mapping file is not valid TOML, or a key or value in it is wrong (the message
    names the section and key)."""


class ExportError(ImportSetupError):
    """The export cannot be read as CSV: encoding, missing or duplicate header columns."""
