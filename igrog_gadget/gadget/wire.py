"""What both ends of the wire agree on: message ids, fixed sizes and fields, errors, limits.

:mod:`igrog_gadget.gadget.protocol` (the connection) and :mod:`igrog_gadget.gadget.recondata`
(the ``IsmrmrdReconData`` payload) both build on this module and on nothing of each other's
but ``protocol`` -> ``recondata`` (the channel reads recon-data payloads through it).
"""

from __future__ import annotations

import ctypes
import struct
from dataclasses import dataclass

import ismrmrd

from igrog_gadget.errors import IgrogError

# --------------------------------------------------------------------------------------------
# Message ids (Gadgetron's MessageID.h; MRD's constants.py uses the same numbers)
# --------------------------------------------------------------------------------------------
CONFIG_FILE = 1
CONFIG_TEXT = 2
HEADER = 3
CLOSE = 4
TEXT = 5
QUERY = 6
RESPONSE = 7
ERROR = 8
ACQUISITION = 1008
IMAGE = 1022
RECONDATA = 1023
IMAGE_ARRAY = 1024
WAVEFORM = 1026
BUCKET = 1050

MESSAGE_NAMES = {
    CONFIG_FILE: "CONFIG_FILE",
    CONFIG_TEXT: "CONFIG_TEXT",
    HEADER: "HEADER",
    CLOSE: "CLOSE",
    TEXT: "TEXT",
    QUERY: "QUERY",
    RESPONSE: "RESPONSE",
    ERROR: "ERROR",
    ACQUISITION: "ACQUISITION",
    IMAGE: "IMAGE",
    RECONDATA: "RECONDATA",
    IMAGE_ARRAY: "IMAGE_ARRAY",
    WAVEFORM: "WAVEFORM",
    BUCKET: "BUCKET",
}

CONFIG_FILE_SIZE = 1024
ACQUISITION_HEADER_SIZE = ctypes.sizeof(ismrmrd.AcquisitionHeader)  # 340
IMAGE_HEADER_SIZE = ctypes.sizeof(ismrmrd.ImageHeader)  # 198
WAVEFORM_HEADER_SIZE = ctypes.sizeof(ismrmrd.WaveformHeader)  # 40

#: The fixed-size fields every message uses (little-endian): the message id, lengths, flags.
ID = struct.Struct("<H")
U32 = struct.Struct("<I")
U64 = struct.Struct("<Q")
BOOL = struct.Struct("<?")


def message_name(mid: int) -> str:
    """Readable name of a message id, e.g. ``'ACQUISITION (1008)'``."""
    return f"{MESSAGE_NAMES.get(mid, 'unknown')} ({mid})"


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------
class ProtocolError(IgrogError):
    """The peer broke the protocol or went away; ends this connection only."""


class PeerClosedError(ProtocolError):
    """The peer closed the connection (EOF or reset) without a CLOSE message."""


class TruncatedMessageError(PeerClosedError):
    """The connection ended in the middle of a message."""


class PeerTimeoutError(ProtocolError):
    """The peer sent nothing for longer than the configured timeout."""


class MessageTooLargeError(ProtocolError):
    """A message announced a size beyond :class:`ProtocolLimits`."""


class MalformedMessageError(ProtocolError):
    """A message's content is inconsistent (unknown data type, bad dimensions...)."""


# --------------------------------------------------------------------------------------------
# Limits
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProtocolLimits:
    """Bounds that protect a connection (and the server) from broken or hostile peers."""

    max_message_bytes: int = 1 << 30
    """Largest acquisition / image / waveform / recon-data payload accepted (1 GiB)."""
    max_text_bytes: int = 64 << 20
    """Largest config / header / text payload accepted (64 MiB)."""
    idle_timeout_s: float | None = 600.0
    """Longest wait for the next message to start (None: wait forever; EOF still ends it)."""
    read_timeout_s: float = 60.0
    """Longest silence in the middle of a message before the peer counts as stalled."""
    message_deadline_s: float = 20.0
    """Base time a whole message may take from its first byte to its last; it gets its size on top
    at ``min_message_rate`` (a peer trickling a byte at a time inside the read timeout is cut
    off after this base time; a genuine large message is never cut)."""
    min_message_rate: float = 10e6
    """Bytes per second a message is allowed at the least beyond the base time: a message must be
    complete ``message_deadline_s + size / min_message_rate`` after its first byte, its size being
    the bytes its header announces (or, for a message that announces its parts one at a time, the
    bytes received so far). 10 MB/s: a 256 MiB acquisition has 47 s; at 1 Gbit/s it takes 2 s."""
    send_timeout_s: float = 120.0
    """Longest a blocked send may wait for the peer to read."""
    max_array_dimensions: int = 16
    """Most dimensions an array in a recon-data message may declare."""
    max_acquisition_channels: int | None = None
    """Most active_channels of an acquisition, checked from its header before its data are read
    (a gadget session sets it from ``ResourceLimits.max_coils``); None = only the byte limit."""
    max_acquisition_samples: int | None = None
    """Most number_of_samples of an acquisition (``ResourceLimits.max_readout_samples``)."""
