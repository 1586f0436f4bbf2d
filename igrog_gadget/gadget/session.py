"""One connection of the gadget: handshake, the shared gridding pipeline, outputs, errors.

A session runs three threads over one :class:`~igrog_gadget.gadget.protocol.MessageChannel`:

- the *reader* reads whole messages as they arrive and queues them (bounded by
  ``max_buffered_bytes``), so readouts that arrive while a model trains are buffered, not
  dropped, and a peer that vanishes, stalls or sends garbage is noticed at once;
- the *worker* (the thread that calls :meth:`GadgetSession.run`) feeds the queued items in
  arrival order through :class:`~igrog_gadget.stream.pipeline.GriddingPipeline` -- the same
  pipeline ``igrog replay`` uses -- and sends what comes out, in order: gridded frames in the
  chosen output form, everything else exactly as it arrived;
- the *trainer* (the training queue of :class:`~igrog_gadget.planning.gridder.FrameGridder`) trains
  each calibration key's model as soon as its calibration data and first readouts are in, while
  the worker goes on ingesting; a frame that completes waits only for its own key's model.

Handshake: CONFIG_FILE (1) or CONFIG_TEXT (2), then HEADER (3), then optionally a TEXT (5)
JSON object (the MRD ``configAdditional``), then data. Failures end the session with a clear
message to the peer (Gadgetron: ERROR (8) + CLOSE; MRD: TEXT "ERROR ..." + CLOSE) and in the
log; a peer that is gone is only logged. Nothing here ever stops the server.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any

from igrog_gadget.errors import ConfigError, GriddingCancelled, IgrogError
from igrog_gadget.gadget import protocol
from igrog_gadget.gadget.handshake import Handshake, handshake_properties
from igrog_gadget.gadget.protocol import Message, MessageChannel, PeerClosedError, ProtocolError, WireBytes
from igrog_gadget.gadget.session_output import SessionOutput
from igrog_gadget.gadget.settings import Dialect, GadgetSettings, parse_json_text, properties_from_json
from igrog_gadget.io import image_item_from_image, image_series_name, parse_header, readout_from_header_and_arrays
from igrog_gadget.limits import ResourceLimits
from igrog_gadget.scan import ScanHeader
from igrog_gadget.stream.pipeline import GriddingPipeline

logger = logging.getLogger(__name__)



class SessionSlots:
    """The server's session slots: at most ``limit`` sessions past their handshake at once."""

    def __init__(self, limit: int) -> None:
        self.limit = int(limit)
        self._lock = threading.Lock()
        self.in_use = 0

    def acquire(self) -> bool:
        """Take a slot without waiting; False when all are taken."""
        with self._lock:
            if self.in_use >= self.limit:
                return False
            self.in_use += 1
            return True

    def release(self) -> None:
        with self._lock:
            if self.in_use <= 0:
                raise RuntimeError("a session slot was released that was not taken")
            self.in_use -= 1


class SessionError(IgrogError):
    """A session-level failure to report to the peer (bad handshake, unexpected message...)."""


@dataclass
class SessionReport:
    """What one connection did (kept by the server for tests and logs)."""

    peer: str
    dialect: str
    variant: str = ""
    output: str = ""
    messages_in: int = 0
    acquisitions_in: int = 0
    frames_out: int = 0
    messages_out: int = 0
    passthrough_out: int = 0
    trainings: int = 0
    frame_paths: list[str] = field(default_factory=list)
    """``FrameReport.path`` of every frame: trained / reused model / cached kernels."""
    frame_latencies_s: list[float] = field(default_factory=list)
    """Per frame sent: seconds from the arrival of the message that completed it (its last
    readout, or the CLOSE that ended the stream) to its sending."""
    error: str | None = None
    """Why the session failed; None when it ended with CLOSE."""
    closed_by_peer: bool = False
    started: float = 0.0
    ended: float = 0.0
    last_calibration_arrival: float | None = None
    """perf_counter() when the last calibration readout before the first frame arrived."""
    first_frame_sent: float | None = None
    """perf_counter() when the first gridded frame was sent."""

    @property
    def seconds(self) -> float:
        return max(0.0, self.ended - self.started)

    @property
    def calibration_to_first_output_s(self) -> float | None:
        if self.last_calibration_arrival is None or self.first_frame_sent is None:
            return None
        return self.first_frame_sent - self.last_calibration_arrival


@dataclass
class _PassThrough:
    """A message the pipeline hands back untouched (waveforms, text, recon data...)."""

    message: Message


#: How often a session waiting for the next message checks whether a held frame's model is ready.
READY_POLL_S = 0.05


class _Inbox:
    """Messages read ahead by the reader thread; bounded in bytes (the reader waits when full)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.items: collections.deque[tuple[Message, float]] = collections.deque()
        self.bytes = 0
        self.error: ProtocolError | None = None
        self.finished = False
        self.stopped = False
        self.condition = threading.Condition()

    def put(self, message: Message, arrival: float) -> bool:
        with self.condition:
            while self.bytes > 0 and self.bytes + len(message.raw) > self.max_bytes and not self.stopped:
                self.condition.wait()
            if self.stopped:
                return False
            self.items.append((message, arrival))
            self.bytes += len(message.raw)
            self.condition.notify_all()
            return True

    def fail(self, error: ProtocolError) -> None:
        with self.condition:
            self.error = error
            self.finished = True
            self.condition.notify_all()

    def finish(self) -> None:
        with self.condition:
            self.finished = True
            self.condition.notify_all()

    def stop(self) -> None:
        with self.condition:
            self.stopped = True
            self.condition.notify_all()

    def get(self, timeout_s: float | None = None) -> tuple[Message, float] | None:
        """The next message (None after ``timeout_s`` without one); raises the reader's
        ProtocolError once the queue is drained...

        ...or immediately: a broken stream is not processed further.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self.condition:
            while True:
                if self.error is not None:
                    raise self.error
                if self.items:
                    message, arrival = self.items.popleft()
                    self.bytes -= len(message.raw)
                    self.condition.notify_all()
                    return message, arrival
                if self.finished:
                    raise PeerClosedError("the reader stopped before a CLOSE message")
                if deadline is None:
                    self.condition.wait()
                elif not self.condition.wait(max(0.0, deadline - time.monotonic())):
                    return None


class GadgetSession:
    """Serves one connection from handshake to CLOSE (or to the first error)."""

    def __init__(
        self,
        channel: MessageChannel,
        dialect: Dialect = Dialect.GADGETRON,
        defaults: GadgetSettings | None = None,
        max_buffered_bytes: int = 2 << 30,
        resource_limits: ResourceLimits | None = None,
        slots: "SessionSlots | None" = None,
        handshake_timeout_s: float | None = 30.0,
        memory_limit_mb: float | None = None,
    ) -> None:
        self.memory_limit_mb = memory_limit_mb
        """The OS limit on this session's memory, when it runs in a worker process (for messages)."""
        self.resource_limits = resource_limits or ResourceLimits()
        # an acquisition's coils and samples are refused from its header, before its data are read
        channel.limits = dataclasses.replace(
            channel.limits,
            max_acquisition_channels=self.resource_limits.max_coils,
            max_acquisition_samples=self.resource_limits.max_readout_samples,
        )
        self.channel = channel
        self.dialect = Dialect(dialect)
        self.defaults = defaults or GadgetSettings()
        self.max_buffered_bytes = max_buffered_bytes
        self.slots = slots
        """Session slots of the server: taken once the handshake is complete (a peer that sends
        nothing never holds one), given back when the session ends."""
        self.handshake_timeout_s = handshake_timeout_s
        self._holds_slot = False
        self.report = SessionReport(peer=channel.peer, dialect=self.dialect.value)
        self.pipeline: GriddingPipeline | None = None
        self.header: ScanHeader | None = None
        self.settings: GadgetSettings | None = None
        self.output = ""
        self._inbox = _Inbox(max_buffered_bytes)
        self._reader: threading.Thread | None = None
        self._sender: SessionOutput | None = None
        """Encodes and sends the outputs (made with the pipeline)."""
        self._raw_waiting: dict[int, WireBytes] = {}
        """Raw messages of pass-through items the pipeline holds behind a training frame (by id)."""
        self._error_reported = False

    # --- entry point ----------------------------------------------------------------------
    def run(self, handshake: Handshake | None = None) -> SessionReport:
        """Serve the connection until CLOSE or an error; never raises for peer or data errors.

        Args:
            handshake: config and header already read by someone else (Gadgetron's own
                ``Connection`` in active mode, or the server's front process that handed the
                connection to a worker process); None reads them from the channel.
        """
        if not self.report.started:
            self.report.started = time.perf_counter()
        try:
            self._report_failures(self._serve, handshake)
        finally:
            self._end()
        if self.report.error is None:
            logger.info(
                "%s: done in %.2f s: %d message(s) in (%d acquisitions), %d frame(s) out as %s, "
                "%d pass-through, %d training(s)",
                self.channel.peer,
                self.report.seconds,
                self.report.messages_in,
                self.report.acquisitions_in,
                self.report.frames_out,
                self.output,
                self.report.passthrough_out,
                self.report.trainings,
            )
        return self.report

    def accept(self) -> Handshake | None:
        """Read and check the handshake and take a session slot, then stop: what the server's
        front process does before it hands the connection to a worker process (which calls
        :meth:`run` with the handshake). Returns None when the session has already ended (the
        peer closed, or was told what was wrong, and the connection is closed)."""
        self.report.started = time.perf_counter()
        accepted: list[Handshake] = []

        def read() -> None:
            handshake = self._read_handshake()
            if handshake is not None:
                self._check_handshake(handshake)
                accepted.append(handshake)

        if self._report_failures(read) and accepted:
            return accepted[0]
        self._end()
        return None

    def end_elsewhere(self, report: SessionReport | None, lost: str = "") -> SessionReport:
        """After :meth:`accept`: the worker process that served the connection has ended. With its
        ``report`` the session is over (the worker closed the connection); without one the worker
        died (killed, out of memory, a native crash: ``lost`` says how), and the peer is told so
        here. Releases the slot and closes this process's copy of the connection."""
        if report is not None:
            report.started = self.report.started
            self.report = report
        else:
            self.report.ended = time.perf_counter()
            if self.memory_limit_mb:
                lost += (
                    f" (its memory limit of {self.memory_limit_mb:.0f} MiB may be the cause: a native library that "
                    "cannot allocate ends the process)"
                )
            logger.error("%s: the session's worker process %s", self.channel.peer, lost)
            self._fail(f"internal error (please report): the session's worker process {lost}", logged=True)
        self._end()
        return self.report

    def _report_failures(self, work: Callable[..., None], *args: Any) -> bool:
        """Run ``work``; a failure is logged and reported to the peer (never raised). True when it
        completed."""
        try:
            work(*args)
            return True
        except ProtocolError as error:
            # the reader thread has logged its own errors the moment it met them
            self._fail(str(error), peer_gone=isinstance(error, PeerClosedError), logged=error is self._inbox.error)
        except GriddingCancelled as error:  # the reader met a broken stream and cancelled the work
            cause = self._inbox.error
            self._fail(str(cause or error), peer_gone=isinstance(cause, PeerClosedError), logged=cause is not None)
        except IgrogError as error:  # the peer's data or configuration: its message names the problem
            self._fail(str(error))
        except MemoryError:
            logger.exception("%s: out of memory", self.channel.peer)
            self._fail(self._out_of_memory_text())
        except Exception as error:  # noqa: BLE001 - a bug, never the peer's fault: log, report, carry on serving
            if _is_allocation_failure(error):
                logger.exception("%s: out of memory", self.channel.peer)
                self._fail(self._out_of_memory_text())
            else:
                logger.exception("%s: internal error", self.channel.peer)
                self._fail(f"internal error (please report): {type(error).__name__}: {error}")
        return False

    def _out_of_memory_text(self) -> str:
        if self.memory_limit_mb:
            return (
                f"out of memory: this scan needs more than the session's memory limit of "
                f"{self.memory_limit_mb:.0f} MiB (the server's --max-session-mb)"
            )
        return "out of memory: this scan needs more memory than the server has free"

    def _end(self) -> None:
        """Stop the reader, give the slot back, close the connection and free the models."""
        self._inbox.stop()
        if self._holds_slot and self.slots is not None:
            self.slots.release()
            self._holds_slot = False
        if self._error_reported:
            self.channel.linger()
        self.channel.close()
        if self._reader is not None:
            self._reader.join(timeout=5.0)
        self.report.ended = self.report.ended or time.perf_counter()
        if self.pipeline is not None:
            if self.report.error is not None:
                self.pipeline.gridder.cancel()  # a training still running for a failed session stops
            self.pipeline.gridder.close()
            self.report.trainings = self.pipeline.gridder.trainings

    # --- handshake ------------------------------------------------------------------------
    def _serve(self, handshake: Handshake | None) -> None:
        if handshake is None:
            handshake = self._read_handshake()
            if handshake is None:
                return
        logger.info(
            "%s: %s peer, config %s, header %d bytes",
            self.channel.peer,
            self.dialect.value,
            repr(handshake.config_name)
            if handshake.config_name is not None
            else f"text of {len(handshake.config_text or '')} chars",
            len(handshake.header_xml),
        )
        properties = self._check_handshake(handshake)
        self._start_reader()
        message, arrival = self._next()
        if message.mid == protocol.TEXT:
            data = parse_json_text(message.value)
            if data is not None:
                properties.extend(properties_from_json(data, "JSON config (TEXT message)"))
                message, arrival = self._next()
        self._start_pipeline(properties)
        while True:
            if self._handle(message, arrival):
                return
            message, arrival = self._next()

    def _check_handshake(self, handshake: Handshake) -> list[tuple[str, str]]:
        """Check the configuration and header (bad settings are reported now, not when the first
        data arrive; a JSON TEXT may add more later) and take a session slot; returns the
        configuration's properties."""
        properties = handshake_properties(handshake, self._unknown_config_name)
        config = self.defaults.merged(properties, "configuration").igrog_config()
        self.resource_limits.check_config(config)
        self.header = parse_header(handshake.header_xml)
        self.resource_limits.check_header(self.header, config, "ISMRMRD header")
        self._take_slot()
        return properties

    def _take_slot(self) -> None:
        if self.slots is None or self._holds_slot:
            return
        if not self.slots.acquire():
            raise SessionError(
                f"server busy ({self.slots.limit} sessions, limit {self.slots.limit}); try again later"
            )
        self._holds_slot = True

    def _read_handshake(self) -> Handshake | None:
        until = None if not self.handshake_timeout_s else time.monotonic() + self.handshake_timeout_s
        first = self.channel.read_message(until)
        self.report.messages_in += 1
        if first.mid == protocol.CLOSE:
            logger.info("%s: closed before sending a configuration", self.channel.peer)
            self._send_close()
            return None
        handshake = Handshake()
        if first.mid == protocol.CONFIG_FILE:
            handshake.config_name = first.value
        elif first.mid == protocol.CONFIG_TEXT:
            handshake.config_text = first.value
        else:
            raise SessionError(f"expected CONFIG_FILE (1) or CONFIG_TEXT (2) first, got {first.name}")
        second = self.channel.read_message(until)
        self.report.messages_in += 1
        if second.mid == protocol.CLOSE:
            logger.info("%s: closed before sending an ISMRMRD header", self.channel.peer)
            self._send_close()
            return None
        if second.mid != protocol.HEADER:
            raise SessionError(f"expected the ISMRMRD HEADER (3) after the configuration, got {second.name}")
        handshake.header_xml = second.value
        return handshake

    def _unknown_config_name(self, name: str) -> None:
        """A configuration name the gadget does not know: logged (and told to an MRD client); the
        session runs with the server's settings."""
        from igrog_gadget.config import VARIANTS

        logger.warning(
            "%s: unknown config name %r; using the server's settings (names the gadget knows: igrog, igrog_<variant>, "
            "<variant> with variant one of %s)",
            self.channel.peer,
            name,
            ", ".join(VARIANTS),
        )
        if self.dialect is Dialect.MRD:
            self._send_quietly(
                protocol.encode_text_message(
                    protocol.TEXT, f"WARNING  iGROG gadget: unknown config {name!r}; using the server's settings", True
                )
            )

    def _start_pipeline(self, properties: list[tuple[str, str]]) -> None:
        settings = self.defaults.merged(properties, "configuration")
        config = settings.igrog_config()
        output = settings.output or self.dialect.default_output
        if self.dialect is Dialect.MRD and output == "recondata":
            raise ConfigError(
                "output=recondata is for Gadgetron chains; MRD clients read images, "
                "acquisitions and waveforms only (use output=images or output=acquisitions)"
            )
        self.resource_limits.check_config(config)
        self.settings = settings
        self.output = output
        self.report.variant = config.variant
        self.report.output = output
        assert self.header is not None
        try:
            self.pipeline = GriddingPipeline(
                self.header, config, resource_limits=self.resource_limits, background_training=True
            )
        except ValueError as error:  # e.g. device=cuda without CUDA
            raise ConfigError(str(error)) from None
        self._sender = SessionOutput(self.channel, self.report, self.header, settings, config, output, self.pipeline.gridder.device)
        logger.info(
            "%s: gridding %s %s data (matrix %s) with variant %s on %s; output %s",
            self.channel.peer,
            self.header.trajectory,
            "x".join(map(str, self.header.encoded_matrix[:2])),
            self.header.encoded_matrix,
            config.variant,
            self.pipeline.gridder.device,
            output,
        )

    # --- reader thread --------------------------------------------------------------------
    def _start_reader(self) -> None:
        self._reader = threading.Thread(target=self._read_loop, name=f"igrog-reader {self.channel.peer}", daemon=True)
        self._reader.start()

    def _read_loop(self) -> None:
        number = self.report.messages_in  # the handshake's, read before this thread started
        try:
            while True:
                number += 1
                message = self.channel.read_message()
                if not self._inbox.put(message, time.perf_counter()):
                    return
                if message.mid == protocol.CLOSE:
                    self._inbox.finish()
                    return
        except Exception as exception:  # noqa: BLE001 - any failure of this thread ends the session, never hangs it
            error = (
                exception
                if isinstance(exception, ProtocolError)
                else protocol.MalformedMessageError(
                    f"message {number} cannot be read: "
                    f"{type(exception).__name__}: {exception}"
                )
            )
            if not isinstance(exception, ProtocolError):
                logger.exception("%s: reader failed", self.channel.peer)
            if not self._inbox.stopped:
                detail = "; nothing buffered is gridded or sent" if isinstance(error, PeerClosedError) else ""
                logger.error("%s: %s; ending this connection%s", self.channel.peer, error, detail)
            self._inbox.fail(error)
            if self.pipeline is not None:  # a broken stream: stop training/gridding for it at once
                self.pipeline.gridder.cancel()

    def _next(self) -> tuple[Message, float]:
        """The next message; meanwhile, frames the pipeline holds leave as soon as their model is
        ready (checked every ``READY_POLL_S``), not only when the next message arrives."""
        while True:
            pipeline = self.pipeline
            waiting = pipeline is not None and pipeline.holds_frames()
            got = self._inbox.get(READY_POLL_S if waiting else None)
            if got is not None:
                self.report.messages_in += 1
                return got
            assert pipeline is not None  # only a pipeline that holds frames waits with a timeout
            self._emit(pipeline.release_ready(), None, None)

    # --- processing -----------------------------------------------------------------------
    def _handle(self, message: Message, arrival: float) -> bool:
        """Process one message; True when the session is complete."""
        pipeline, sender = self.pipeline, self._sender
        assert pipeline is not None and sender is not None
        sender.note_arrival(arrival)
        mid = message.mid
        if mid == protocol.ACQUISITION:
            wire = message.value
            dims = int(wire.head.trajectory_dimensions)
            readout = readout_from_header_and_arrays(  # views of the message buffer: no copy
                wire.head,
                wire.data,
                wire.traj if dims else None,
                self.report.acquisitions_in,
            )
            self.report.acquisitions_in += 1
            sender.note_arrival(arrival, readout)
            self._emit(pipeline.process(readout), readout, message)
            return False
        if mid == protocol.IMAGE:
            image = message.value
            item = image_item_from_image(image, image_series_name(image))
            self._emit(pipeline.process(item), item, message)
            return False
        if mid == protocol.TEXT and self.dialect is Dialect.MRD:  # e.g. OpenRecon's status texts mid-stream
            logger.info("%s: TEXT from the client, ignored: %s", self.channel.peer, str(message.value)[:200])
            return False
        if mid in (protocol.WAVEFORM, protocol.TEXT, protocol.RECONDATA):
            token = _PassThrough(message)
            self._emit(pipeline.process(token), token, message)
            return False
        if mid == protocol.CLOSE:
            self.report.closed_by_peer = True
            self._emit(pipeline.close(), None, None)
            self._send_close()
            return True
        raise SessionError(f"unexpected {message.name} message in the data stream")

    def _emit(self, outputs: list[Any], item: Any, message: Message | None) -> None:
        """Send every output in order; a pass-through item the pipeline holds behind a frame still
        training keeps its raw message until it leaves."""
        if self._inbox.error is not None:  # the peer went away while this item was processed
            raise self._inbox.error
        assert self._sender is not None
        for out in outputs:
            raw = message.raw if message is not None and item is not None and out is item else self._raw_waiting.pop(id(out), None)
            if raw is None and isinstance(out, _PassThrough):
                raw = out.message.raw
            self._sender.send(out, raw)
        if message is not None and item is not None and self.pipeline is not None and self.pipeline.holds(item):
            self._raw_waiting[id(item)] = message.raw  # it leaves later, behind a frame still training

    # --- ending ---------------------------------------------------------------------------
    def _send_close(self) -> None:
        self.channel.send(protocol.encode_close())
        self.report.messages_out += 1

    def _send_quietly(self, *payloads: bytes) -> None:
        try:
            self.channel.send(*payloads)
        except ProtocolError as error:
            logger.debug("%s: could not send: %s", self.channel.peer, error)

    def _fail(self, text: str, peer_gone: bool = False, logged: bool = False) -> None:
        """Record, log and (unless the peer is gone) report an error, then CLOSE."""
        if self.report.error is not None:
            return
        self.report.error = text
        if peer_gone:
            if not logged:
                logger.error("%s: %s", self.channel.peer, text)
            return
        if not logged:
            logger.error("%s: closing the connection: %s", self.channel.peer, text)
        if self.dialect is Dialect.GADGETRON:
            report = protocol.encode_error(f"iGROG gadget: {text}")
        else:
            report = protocol.encode_text_message(protocol.TEXT, f"ERROR    iGROG gadget: {text}", nul_terminate=True)
        self._send_quietly(report, protocol.encode_close())
        self._error_reported = True


def _is_allocation_failure(error: BaseException) -> bool:
    """True for torch's failed CPU allocation (a plain ``RuntimeError``; numpy raises
    ``MemoryError``), CUDA's out-of-memory error and a thread that cannot start (its stack is
    memory too)."""
    text = str(error)
    markers = ("can't allocate memory", "can't start new thread")
    return isinstance(error, RuntimeError) and (any(m in text for m in markers) or "out of memory" in text.lower())


__all__ = ["Dialect", "GadgetSession", "Handshake", "SessionError", "SessionReport"]
