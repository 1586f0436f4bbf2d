"""The other side of the gadget: a minimal streaming peer (what Gadgetron or an MRD client does).

Used by the tests and the stream benchmark, and handy for checking a running ``igrog serve``::

    with StreamClient.connect("localhost", 18000) as client:
        client.send_handshake(configuration_xml({"output": "images"}), header_xml)
        for message in dataset_messages(dataset):
            client.send(message)
        client.send_close()
        replies = client.wait_closed(timeout_s=60)

Sending and receiving run concurrently (a receiver thread), as a real peer must: the gadget
sends results while data is still arriving.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Mapping
from xml.sax.saxutils import quoteattr

from igrog_gadget.gadget import protocol
from igrog_gadget.gadget.protocol import Message, MessageChannel, ProtocolError, ProtocolLimits
from igrog_gadget.io import RawDataset, acquisition_from_readout, image_from_item
from igrog_gadget.scan import Readout

logger = logging.getLogger(__name__)


def configuration_xml(properties: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> str:
    """A Gadgetron ``<configuration>`` element with ``<property name= value=/>`` children."""
    items = properties.items() if isinstance(properties, Mapping) else properties
    lines = ['<?xml version="1.0"?>', "<configuration>"]
    for name, value in items:
        lines.append(f"    <property name={quoteattr(str(name))} value={quoteattr(str(value))}/>")
    lines.append("</configuration>")
    return "\n".join(lines) + "\n"


def dataset_messages(dataset: RawDataset, images_first: bool = True) -> Iterator[bytes]:
    """Messages of a dataset's items: images (inputs such as b0 maps) first, then waveforms,
    then acquisitions in file order (``images_first=False`` sends images last, as MRD clients do)."""
    if images_first:
        for item in dataset.images:
            yield protocol.encode_image(image_from_item(item))
    for waveform in dataset.waveforms:
        yield protocol.encode_waveform(waveform)
    for readout in dataset.readouts:
        yield protocol.encode_acquisition(acquisition_from_readout(readout))
    if not images_first:
        for item in dataset.images:
            yield protocol.encode_image(image_from_item(item))


def readout_messages(readouts: Iterable[Readout]) -> Iterator[bytes]:
    """ACQUISITION messages of readouts."""
    for readout in readouts:
        yield protocol.encode_acquisition(acquisition_from_readout(readout))


@dataclass
class Received:
    """Messages that came back, with arrival times (perf_counter)."""

    messages: list[Message] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    closed: bool = False
    """A CLOSE message arrived."""
    error: str | None = None
    """Why receiving stopped without CLOSE (EOF, reset...)."""

    def of(self, mid: int) -> list[Message]:
        return [m for m in self.messages if m.mid == mid]


class StreamClient:
    """Sends messages to a gadget and collects what it sends back."""

    def __init__(self, sock: socket.socket, limits: ProtocolLimits | None = None) -> None:
        self.channel = MessageChannel(sock, limits or ProtocolLimits(idle_timeout_s=None))
        self.received = Received()
        self._done = threading.Event()
        self._receiver = threading.Thread(target=self._receive, name="igrog-client-receiver", daemon=True)
        self._receiver.start()

    @classmethod
    def connect(
        cls, host: str, port: int, timeout_s: float = 10.0, limits: ProtocolLimits | None = None
    ) -> "StreamClient":
        """Connect to a listening gadget (passive mode / ``igrog serve``)."""
        return cls(socket.create_connection((host, port), timeout=timeout_s), limits)

    def _receive(self) -> None:
        try:
            while True:
                message = self.channel.read_message()
                self.received.messages.append(message)
                self.received.arrivals.append(time.perf_counter())
                if message.mid == protocol.CLOSE:
                    self.received.closed = True
                    return
        except ProtocolError as error:
            self.received.error = str(error)
        finally:
            self._done.set()

    # --- sending --------------------------------------------------------------------------
    def send(self, *messages: bytes) -> None:
        self.channel.send(*messages)

    def send_handshake(
        self, config: str, header_xml: str, config_is_name: bool = False, nul_terminate: bool = False
    ) -> None:
        """CONFIG_TEXT (or CONFIG_FILE when ``config_is_name``) followed by the HEADER."""
        first = (
            protocol.encode_config_file(config)
            if config_is_name
            else protocol.encode_text_message(protocol.CONFIG_TEXT, config, nul_terminate)
        )
        self.send(first, protocol.encode_text_message(protocol.HEADER, header_xml, nul_terminate))

    def send_close(self) -> None:
        self.send(protocol.encode_close())

    # --- waiting --------------------------------------------------------------------------
    def wait_closed(self, timeout_s: float = 120.0) -> Received:
        """Wait until the gadget sent CLOSE or the connection ended; returns what came back."""
        self._done.wait(timeout_s)
        return self.received

    def close(self) -> None:
        self.channel.close()
        self._receiver.join(timeout=5.0)

    def __enter__(self) -> "StreamClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
