"""Fixtures of the gadget tests (defined in gadget_helpers)."""

from gadget_helpers import radial_acs, radial_multi, spiral_acs, server, mrd_server  # noqa: F401
