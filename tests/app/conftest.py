"""Fixtures of the basic variant, replay and CLI tests (defined in app_helpers)."""

from app_helpers import data_file, rewrite  # noqa: F401
