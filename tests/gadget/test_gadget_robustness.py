"""Broken peers against a real ``igrog serve`` process: each ends only its own stream, promptly, without
spinning the CPU; the server logs a clear error and keeps serving."""

from __future__ import annotations

import re
import socket
import struct
import sys
import time
from pathlib import Path

import ismrmrd
import pytest

from gadget_helpers import FAST_OVERRIDES, process_cpu_seconds, send_all, start_server_process
from process_helpers import descendants
from igrog_gadget.gadget import protocol
from igrog_gadget.gadget.client import StreamClient, configuration_xml, dataset_messages

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads process CPU time from /proc")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """``igrog serve`` in a subprocess: (process, port, log path)."""
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    args = ["--read-timeout", "1", "--idle-timeout", "30", "--max-message-mb", "64", "--spare-workers", "1"]
    for override in FAST_OVERRIDES:
        args += ["--set", override]
    process, port = start_server_process(args, log)
    yield process, port, log
    process.terminate()
    try:
        process.wait(timeout=15)
    except Exception:  # noqa: BLE001 - make sure the test run never leaves it behind
        process.kill()
        process.wait()


def wait_for_log(log: Path, text: str, timeout_s: float = 20.0, after: int = 0) -> float:
    """Seconds until ``text`` appears in the log past its first ``after`` characters (fails
    after ``timeout_s``)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if text in log.read_text()[after:]:
            return time.monotonic() - started
        time.sleep(0.02)
    raise AssertionError(f"{text!r} not logged within {timeout_s} s; log tail:\n{log.read_text()[-3000:]}")


def tree_cpu_seconds(pid: int) -> float:
    total = 0.0
    for member in [pid, *descendants(pid)]:
        try:
            total += process_cpu_seconds(member)
        except OSError:  # ended meanwhile
            pass
    return total


def idle_cpu_seconds(pid: int, seconds: float = 1.0) -> float:
    """CPU seconds the server and its workers use in a window of ``seconds`` after their work
    settled (idle: none; a busy-waiting thread or a training that was not cancelled: about one a
    second)."""
    time.sleep(0.3)  # let thread pools settle after the last work
    before = tree_cpu_seconds(pid)
    time.sleep(seconds)
    return tree_cpu_seconds(pid) - before


def raw_connection(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def test_truncated_message_ends_only_its_own_stream(served, radial_acs):
    process, port, log = served
    messages = list(dataset_messages(radial_acs))
    with StreamClient.connect("127.0.0.1", port) as good:
        good.send_handshake(configuration_xml({"output": "images"}), radial_acs.header_xml)
        for message in messages[:60]:
            good.send(message)
        # meanwhile another peer sends half an acquisition and vanishes
        bad = raw_connection(port)
        bad.sendall(
            protocol.encode_text_message(protocol.CONFIG_TEXT, configuration_xml({}))
            + protocol.encode_text_message(protocol.HEADER, radial_acs.header_xml)
            + messages[1][:500]
        )
        bad.close()
        wait_for_log(log, "connection ended in the middle of acquisition 1: 158 of 4096 bytes received")
        for message in messages[60:]:
            good.send(message)
        good.send_close()
        received = good.wait_closed(120)
    assert [m.mid for m in received.messages] == [protocol.ACQUISITION, protocol.IMAGE, protocol.CLOSE]
    assert process.poll() is None
    assert idle_cpu_seconds(process.pid) < 0.1


def test_peer_vanishing_mid_stream_is_noticed_at_once_even_while_training(served, radial_acs):
    process, port, log = served
    sock = raw_connection(port)
    peer = "%s:%d" % sock.getsockname()[:2]
    client = StreamClient(sock)
    training = "training.fit=network; training.max_steps=100000; training.max_seconds=3"  # 3 s of training
    client.send_handshake(configuration_xml({"set": training}), radial_acs.header_xml)
    offset = len(log.read_text())
    for message in dataset_messages(radial_acs):  # completes the frame: training starts
        client.send(message)
    wait_for_log(log, "calibration solve:", after=offset)  # its training's preparation is done: the fit runs
    client.close()  # gone, no CLOSE
    seconds = wait_for_log(log, "the peer closed the connection without a CLOSE message", after=offset)
    assert seconds < 2.5  # the reader notices while the worker is still training (3 s)
    wait_for_log(log, "nothing buffered is gridded or sent")
    assert idle_cpu_seconds(process.pid) < 0.1  # the training was cancelled: nothing runs (it had 3 s)
    assert f"{peer}: sent frame" not in log.read_text()  # nothing is sent to a peer that is gone
    assert process.poll() is None


def test_absurd_lengths_are_refused_promptly(served, radial_acs):
    process, port, log = served
    sock = raw_connection(port)
    started = time.monotonic()
    sock.sendall(
        protocol.encode_text_message(protocol.CONFIG_TEXT, configuration_xml({}))
        + struct.pack("<HI", protocol.HEADER, 0xFFFFFFF0)
    )
    with StreamClient(sock) as client:
        received = client.wait_closed(10)
    assert time.monotonic() - started < 5
    assert [m.mid for m in received.messages] == [protocol.ERROR, protocol.CLOSE]
    assert "announces 4294967280 bytes, more than the limit" in received.messages[0].value

    sock = raw_connection(port)
    head = ismrmrd.AcquisitionHeader()
    head.number_of_samples, head.active_channels = 65535, 65535
    client = StreamClient(sock)
    send_all(client, configuration_xml({}), radial_acs, [struct.pack("<H", protocol.ACQUISITION) + bytes(head)])
    received = client.wait_closed(10)
    client.close()
    assert received.messages[0].mid == protocol.ERROR
    assert "active_channels = 65535 exceeds the resource limit max_coils = 128" in received.messages[0].value
    wait_for_log(log, "active_channels = 65535 exceeds the resource limit max_coils = 128")
    assert process.poll() is None
    assert idle_cpu_seconds(process.pid) < 0.1


def test_stalled_peer_times_out(served, radial_acs):
    process, port, log = served
    sock = raw_connection(port)
    started = time.monotonic()
    sock.sendall(
        protocol.encode_text_message(protocol.CONFIG_TEXT, configuration_xml({}))
        + protocol.encode_text_message(protocol.HEADER, radial_acs.header_xml)
        + next(iter(dataset_messages(radial_acs)))[:100]
    )
    with StreamClient(sock) as client:
        received = client.wait_closed(15)
    assert 0.8 < time.monotonic() - started < 8
    assert received.messages[0].mid == protocol.ERROR and "stalled for 1 s" in received.messages[0].value


def test_server_still_serves_after_all_that(served, radial_acs):
    process, port, log = served
    with StreamClient.connect("127.0.0.1", port) as client:
        send_all(client, configuration_xml({"output": "recondata"}), radial_acs)
        received = client.wait_closed(120)
    assert [m.mid for m in received.messages] == [protocol.ACQUISITION, protocol.RECONDATA, protocol.CLOSE]
    text = log.read_text()
    assert "Traceback" not in text
    # the command's default: every session ran in a worker process, not the server's
    workers = set(re.findall(r"session handed to worker process (\d+)", text))
    assert workers and str(process.pid) not in workers
    assert all(f"[worker {pid}]" in text for pid in workers)
