"""Errors raised on bad input; each message names what is wrong and where."""

from __future__ import annotations


class IgrogError(Exception):
    """Base class of all errors igrog-gadget raises on purpose."""


class InputDataError(IgrogError, ValueError):
    """Malformed or inconsistent input data (file, acquisition, field named in the message)."""


class ConfigError(IgrogError, ValueError):
    """An invalid configuration field or value (named in the message)."""


class CalibrationError(InputDataError):
    """No usable calibration data (no ACS and no densely sampled centre, wrong shapes, ...)."""


class OutputError(IgrogError):
    """An output that cannot be written (path named): missing or read-only directory, a directory
    in place of the file, a write that failed."""


class GriddingCancelled(IgrogError):
    """The work was cancelled (e.g. the stream it served is gone)."""
