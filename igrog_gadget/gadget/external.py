"""Active mode: the target Gadgetron's ``<execute>`` runs.

Chain XML::

    <external>
        <execute name="igrog_gadget.gadget.external" target="igrog_gadget" type="python"/>
        <configuration>
            <property name="variant" value="basic"/>
        </configuration>
    </external>

Gadgetron then starts ``python -m gadgetron PORT igrog_gadget.gadget.external igrog_gadget``
(with ``$GADGETRON_HOME/share/gadgetron/python`` on ``PYTHONPATH``); the ``gadgetron``
package connects back to Gadgetron, reads the CONFIG and HEADER messages into its
``Connection`` and calls :func:`igrog_gadget` with it. From there on the gadget speaks the
protocol itself over the same socket (:mod:`igrog_gadget.gadget.protocol`), so none of that
package's reader/writer faults (half-written messages with numpy 2, 100 % CPU when the peer
vanishes) apply. :func:`igrog_gadget` equally accepts this project's own
:class:`~igrog_gadget.gadget.protocol.MessageChannel` or a connected socket.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from igrog_gadget.environment import configure_process, set_thread_counts
from igrog_gadget.gadget.protocol import MessageChannel, ProtocolLimits
from igrog_gadget.gadget.session import Dialect, GadgetSession, Handshake, SessionReport
from igrog_gadget.gadget.settings import GadgetSettings, PeerFiles

logger = logging.getLogger(__name__)


class _AlreadyClosed:
    """Stands in for the ``gadgetron`` Connection's socket wrapper once the session has closed
    the connection itself, so that leaving its ``with`` block sends no second CLOSE."""

    def __init__(self, sock: socket.socket) -> None:
        self.socket = sock

    def read(self, nbytes: int) -> bytes:
        return b""

    def write(self, data: bytes) -> None:
        logger.debug("ignoring a write of %d bytes after the session closed", len(data))

    def close(self) -> None:
        try:
            self.socket.close()
        except OSError:
            pass


def _as_text(raw: Any) -> str:
    if raw is None:
        return ""
    if isinstance(raw, (bytes, bytearray)):
        return bytes(raw).split(b"\x00", 1)[0].decode("utf-8", errors="replace")
    return str(raw)


#: Environment variable naming the directory whose files a chain's properties may name (active mode).
DATA_DIR_VARIABLE = "IGROG_DATA_DIR"


def _is_gadgetron_connection(connection: Any) -> bool:
    wrapper = getattr(connection, "socket", None)
    return hasattr(connection, "raw_bytes") and isinstance(getattr(wrapper, "socket", None), socket.socket)


def igrog_gadget(
    connection: Any,
    defaults: GadgetSettings | None = None,
    limits: ProtocolLimits | None = None,
) -> SessionReport:
    """Serve one Gadgetron stream (the ``target`` of ``<execute>``).

    Args:
        connection: ``gadgetron.external.Connection`` (config and header already read),
            a :class:`MessageChannel`, or a connected ``socket.socket``.
        defaults: settings before the chain's properties (default: the gadget's defaults, files
            below ``$IGROG_DATA_DIR`` allowed, none when it is unset).
        limits: protocol limits (default :class:`ProtocolLimits`).

    Returns:
        The session's report (errors are reported to Gadgetron, logged and recorded here;
        they are not raised).
    """
    configure_process()  # this is the process's entry point under Gadgetron
    set_thread_counts(0)  # the processors Gadgetron's process may run on, whatever its environment says
    limits = limits or ProtocolLimits()
    if defaults is None:  # files the chain's properties may name: below $IGROG_DATA_DIR only (none when unset)
        defaults = GadgetSettings(files=PeerFiles(os.environ.get(DATA_DIR_VARIABLE) or None))
    if isinstance(connection, MessageChannel):
        return GadgetSession(connection, Dialect.GADGETRON, defaults).run()
    if isinstance(connection, socket.socket):
        return GadgetSession(MessageChannel(connection, limits), Dialect.GADGETRON, defaults).run()
    if _is_gadgetron_connection(connection):
        sock: socket.socket = connection.socket.socket
        handshake = Handshake(
            config_text=_as_text(connection.raw_bytes.config),
            header_xml=_as_text(connection.raw_bytes.header),
        )
        channel = MessageChannel(sock, limits)
        logger.info("active mode: serving Gadgetron at %s", channel.peer)
        try:
            return GadgetSession(channel, Dialect.GADGETRON, defaults).run(handshake)
        finally:
            connection.socket = _AlreadyClosed(sock)
    raise TypeError(
        "igrog_gadget needs a gadgetron.external.Connection, an igrog MessageChannel or a connected socket; "
        f"got {type(connection).__name__}"
    )
