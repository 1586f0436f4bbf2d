"""Process isolation of ``igrog serve``: each session in a worker process of its own.

A worker killed mid-stream (what the OS's out-of-memory killer or a native crash does) ends its
own session with ERROR + CLOSE; concurrent sessions complete with the bits of a lone run, and
the server goes on serving. A session past its memory limit fails alone, told why.
"""

from __future__ import annotations

import os
import signal
import threading

import numpy as np
import pytest
import torch

from igrog_gadget.gadget import protocol
from igrog_gadget.gadget.client import StreamClient, configuration_xml, dataset_messages
from igrog_gadget.gadget.protocol import PeerClosedError, ProtocolLimits
from igrog_gadget.gadget.server import GadgetServer, ServerOptions
from igrog_gadget.gadget.session import Dialect
from igrog_gadget.gadget.settings import GadgetSettings

from gadget_helpers import gridded_lines, radial_acs, stream_dataset  # noqa: F401  (fixture)

PROPERTIES = [("output", "acquisitions")]


def isolated_server(**options: object) -> GadgetServer:
    settings = dict(host="127.0.0.1", port=0, dialect=Dialect.GADGETRON, isolation="process")
    settings["cpu_threads"] = torch.get_num_threads()
    settings.update(options)
    return GadgetServer(ServerOptions(**settings), GadgetSettings(), ProtocolLimits(read_timeout_s=30))


def lines_of(received) -> np.ndarray:
    return np.stack([line.data for line in gridded_lines(received)])


def test_a_killed_worker_ends_its_own_session_only(radial_acs):  # noqa: F811
    with isolated_server(spare_workers=3) as server:
        server.serve_in_background()
        assert server.pool is not None and server.pool.wait_ready(120)
        alone = lines_of(stream_dataset(server.port, radial_acs, PROPERTIES))
        messages = list(dataset_messages(radial_acs))
        results: list = [None, None]

        def run(index: int) -> None:
            results[index] = stream_dataset(server.port, radial_acs, PROPERTIES)

        with StreamClient.connect("127.0.0.1", server.port) as victim:
            victim.send_handshake(configuration_xml(PROPERTIES), radial_acs.header_xml)
            victim.send(*messages[: len(messages) // 2])
            host, port = victim.channel.sock.getsockname()[:2]
            pid = server.wait_for_worker(f"{host}:{port}", timeout_s=60)
            assert pid is not None and pid != os.getpid()
            threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
            for thread in threads:
                thread.start()
            os.kill(pid, signal.SIGKILL)
            try:
                victim.send(*messages[len(messages) // 2 :])
            except PeerClosedError:
                pass
            told = victim.wait_closed(60)
            for thread in threads:
                thread.join(120)
        errors = [m.value for m in told.messages if m.mid == protocol.ERROR]
        assert told.closed and errors, told.error
        assert "worker process was killed by SIGKILL" in errors[0]
        for received in results:
            np.testing.assert_array_equal(lines_of(received), alone)
        np.testing.assert_array_equal(lines_of(stream_dataset(server.port, radial_acs, PROPERTIES)), alone)
        killed = [r for r in server.reports if r.error]
        assert len(killed) == 1 and "SIGKILL" in killed[0].error
        assert server.wait_idle(30) and server.slots.in_use == 0


def test_a_session_past_its_memory_limit_fails_alone_and_says_why(radial_acs):  # noqa: F811
    with isolated_server(spare_workers=1, memory_limit_mb=24) as server:  # the scan needs about 50 MiB
        server.serve_in_background()
        for _ in range(2):  # the server serves on after a session ran out of memory
            with StreamClient.connect("127.0.0.1", server.port) as client:
                client.send_handshake(configuration_xml(PROPERTIES), radial_acs.header_xml)
                try:
                    client.send(*dataset_messages(radial_acs))
                    client.send_close()
                except PeerClosedError:
                    pass
                received = client.wait_closed(120)
            errors = [m.value for m in received.messages if m.mid == protocol.ERROR]
            assert received.closed and errors, received.error
            # a Python allocation says so; a native library that cannot allocate ends the process
            assert "memory limit of 24 MiB" in errors[0]
        assert server.wait_idle(30) and server.slots.in_use == 0


def test_process_isolation_is_the_servers_default_and_thread_is_a_choice():
    assert ServerOptions().isolation == "process"
    with pytest.raises(ValueError, match="isolation"):
        ServerOptions(isolation="fork")



def test_a_session_limit_too_small_to_serve_is_refused_before_listening(caplog):
    from igrog_gadget.cli import EXIT_BAD_INPUT, main

    assert main(["-q", "serve", "--port", "0", "--max-session-mb", "32"]) == EXIT_BAD_INPUT
    assert "--max-session-mb must be at least 64" in caplog.text
