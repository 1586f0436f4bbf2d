"""A programming error is an internal error, never the user's: the CLI logs its traceback and
exits 1 with "internal error ... (please report)", nothing written; the gadget sends ERROR
"internal error" to the peer, logs the traceback, frees the session and goes on serving. The
failures are injected inside gridding, one of them the ``ValueError`` a shape bug raises."""

from __future__ import annotations

import logging

import pytest
from gadget_helpers import FAST_OVERRIDES, data_file, stream_dataset

from igrog_gadget.planning.gridder import FrameGridder
from igrog_gadget.cli import EXIT_BAD_INPUT, EXIT_FAILURE, main
from igrog_gadget.gadget import protocol


def _fail_with(error: Exception):
    def grid(self, frame):
        raise error

    return grid


@pytest.mark.parametrize("error", [RuntimeError("injected failure"), ValueError("too many values to unpack (expected 3)")])
def test_the_cli_reports_a_bug_as_an_internal_error(monkeypatch, tmp_path, caplog, error):
    monkeypatch.setattr(FrameGridder, "grid", _fail_with(error))
    output = tmp_path / "out.h5"
    overrides = [item for override in FAST_OVERRIDES for item in ("--set", override)]
    with caplog.at_level(logging.ERROR):
        code = main(["replay", "-q", str(data_file("radial_acs.h5")), str(output), *overrides])
    assert code == EXIT_FAILURE != EXIT_BAD_INPUT
    assert f"internal error: {type(error).__name__}: {error} (please report)" in caplog.text
    assert "Traceback" in caplog.text and "in grid" in caplog.text  # where it happened
    assert not output.exists() and list(tmp_path.iterdir()) == []


def test_bad_input_stays_the_users_error(tmp_path, caplog):
    with caplog.at_level(logging.ERROR):
        code = main(["replay", "-q", str(tmp_path / "missing.h5"), str(tmp_path / "out.h5")])
    assert code == EXIT_BAD_INPUT
    assert "internal error" not in caplog.text and "Traceback" not in caplog.text


def test_the_gadget_sends_internal_error_and_frees_the_session(server, radial_acs, monkeypatch, caplog):
    monkeypatch.setattr(FrameGridder, "grid", _fail_with(ValueError("too many values to unpack (expected 3)")))
    with caplog.at_level(logging.ERROR):
        received = stream_dataset(server.port, radial_acs)
    (error,) = received.of(protocol.ERROR)
    assert error.value.startswith("iGROG gadget: internal error (please report): ValueError")
    assert "Traceback" in caplog.text
    monkeypatch.undo()
    again = stream_dataset(server.port, radial_acs)  # the server and its slots are fine
    assert not again.of(protocol.ERROR)
    assert [m for m in again.messages if m.mid != protocol.CLOSE]  # its gridded frame came back


@pytest.mark.parametrize(
    "error",
    [MemoryError(), RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 419430400 bytes")],
)
def test_a_session_out_of_memory_says_so(server, radial_acs, monkeypatch, error):
    """numpy's MemoryError and torch's failed CPU allocation (a RuntimeError) are out of memory,
    not a bug: the peer is told that the scan needs more memory than the session may use."""
    monkeypatch.setattr(FrameGridder, "grid", _fail_with(error))
    received = stream_dataset(server.port, radial_acs)
    (message,) = received.of(protocol.ERROR)
    # this server runs sessions in its own process, without a per-session limit
    assert message.value == "iGROG gadget: out of memory: this scan needs more memory than the server has free"
