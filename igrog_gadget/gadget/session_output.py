"""What a session sends back: pass-through items exactly as they arrived, gridded frames in the
connection's output form (``acquisitions``, ``recondata`` or ``images``), and the session's
counters and per-frame latencies (``SessionReport``)."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import ismrmrd

from igrog_gadget.gadget import protocol
from igrog_gadget.gadget.images import ImagesOutput
from igrog_gadget.gadget.protocol import MessageChannel, WireBytes
from igrog_gadget.gadget.recondata import encode_frame, frame_in_recon_fov
from igrog_gadget.io import acquisition_from_readout, image_from_item
from igrog_gadget.io.acquisitions_output import AcquisitionsOutput
from igrog_gadget.io.calibration_lines import CalibrationLedger
from igrog_gadget.io.output_geometry import OutputGeometry
from igrog_gadget.scan import FRAME_KEY_FIELDS, GriddedFrame, ImageItem, Readout, ScanHeader

if TYPE_CHECKING:
    from igrog_gadget.config import IgrogConfig
    from igrog_gadget.gadget.session import SessionReport
    from igrog_gadget.gadget.settings import GadgetSettings

logger = logging.getLogger(__name__)


class UnsendableItem(RuntimeError):
    """The pipeline handed back an item the gadget cannot send (a programming error: reported as
    an internal error)."""


class SessionOutput:
    """Encodes and sends a session's outputs in order, counting them in its ``SessionReport``.

    ``output``: the connection's output form; ``device``: where the ``images`` output's coil maps
    and SENSE run. Frames' latencies are measured from the arrival of their last readout
    (``note_arrival``) or, for frames completed by the end of the stream, of the last message.
    """

    def __init__(
        self,
        channel: MessageChannel,
        report: "SessionReport",
        header: ScanHeader,
        settings: "GadgetSettings",
        config: "IgrogConfig",
        output: str,
        device: Any,
    ) -> None:
        self.channel = channel
        self.report = report
        self.header = header
        self.settings = settings
        self.config = config
        self.output = output
        self.device = device
        self._acquisitions = AcquisitionsOutput(config.output.calibration, config.output.weights)
        """What frames become in ``output=acquisitions``; counts the acquisitions sent."""
        self._calibration = CalibrationLedger(config.output.calibration)
        """Calibration keys whose blocks were passed on in ``output=recondata`` (``[output] calibration``)."""
        self._images: ImagesOutput | None = None
        """What frames become in ``output=images`` (coil maps cached per calibration key)."""
        self._arrival: float | None = None
        """perf_counter() arrival of the message being handled (the one that completes frames)."""
        self._last_calibration: float | None = None
        self._last_readout_arrival: dict[tuple, float] = {}
        """Per frame key: arrival of its latest imaging readout (for the frame's latency)."""

    def note_arrival(self, arrival: float, readout: Readout | None = None) -> None:
        """A message arrived at ``arrival`` (perf_counter()); ``readout``: its acquisition."""
        self._arrival = arrival
        if readout is None:
            return
        if readout.is_calibration() and self.report.first_frame_sent is None:
            self._last_calibration = arrival
        if readout.is_imaging():
            self._last_readout_arrival[readout.frame_key()] = arrival

    def send(self, out: Any, raw: WireBytes | None) -> None:
        """Send one output of the pipeline: ``raw`` (the message as it arrived) for an item
        passed through untouched, else its encoding.

        Raises:
            UnsendableItem: an item of a type the gadget does not send.
        """
        payloads: list[WireBytes]
        if raw is not None:
            payloads = [raw]  # exactly as it arrived
            self.report.passthrough_out += 1
            if isinstance(out, Readout):
                self._acquisitions.count_passed_through()
        elif isinstance(out, GriddedFrame):
            payloads = self._encode_frame(out)
        elif isinstance(out, Readout):
            payloads = [protocol.encode_acquisition(acquisition_from_readout(out))]
            self._acquisitions.count_passed_through()
            self.report.passthrough_out += 1
        elif isinstance(out, ImageItem):
            payloads = [protocol.encode_image(image_from_item(out))]
            self.report.passthrough_out += 1
        else:
            raise UnsendableItem(f"the pipeline returned an item the gadget cannot send: {type(out).__name__}")
        self.channel.send(*payloads)
        self.report.messages_out += len(payloads)
        if isinstance(out, GriddedFrame):
            self._frame_sent(out)

    def _encode_frame(self, frame: GriddedFrame) -> list[WireBytes]:
        """A gridded frame in the connection's output form."""
        geometry = OutputGeometry.of_frames(self.header, self.config.gridding.grid_oversampling, frame.kspace.shape[1:])
        if self.output == "acquisitions":  # the full grid, exactly as replay writes it
            return [
                protocol.encode_acquisition(item) if isinstance(item, ismrmrd.Acquisition) else protocol.encode_image(item)
                for item in self._acquisitions.items(frame, geometry)
            ]
        if self.output == "recondata":  # oversampling beyond the reconSpace FOV removed
            cropped, fov = frame_in_recon_fov(frame, geometry)
            reference = self._calibration.due(cropped)
            first_scan_counter = self._acquisitions.acquisitions_sent
            return [encode_frame(cropped, fov, first_scan_counter, reference=reference, density=self.config.output.weights)]
        if self._images is None:
            self._images = ImagesOutput(self.config.recon, self.device, self.settings.image_series_index, self.settings.image_dtype)
        return [protocol.encode_image(self._images.image(frame, geometry))]

    def _frame_sent(self, frame: GriddedFrame) -> None:
        """Count a frame sent, its latency, and log how it was gridded."""
        sent = time.perf_counter()
        arrival = self._last_readout_arrival.pop(frame.frame_key, self._arrival)
        latency = sent - arrival if arrival is not None else float("nan")
        self.report.frames_out += 1
        report = frame.report
        self.report.frame_paths.append(report.path.value if report else "")
        self.report.frame_latencies_s.append(latency)
        if self.report.first_frame_sent is None:
            self.report.first_frame_sent = sent
            self.report.last_calibration_arrival = self._last_calibration
        logger.info(
            "%s: sent frame %s %.2f s after its last readout arrived (%s, %.2f s, estimated gridding NRMSE %.3g%s)",
            self.channel.peer,
            frame_label(frame),
            latency,
            report.path.value if report else "?",
            report.total_s if report else 0.0,
            report.estimated_nrmse if report else float("nan"),
            f"; training {report.training.stop}" if report and report.training else "",
        )


def frame_label(frame: GriddedFrame) -> str:
    """The frame's slice, repetition and contrast, and its other counters that are not 0."""
    values = dict(zip(FRAME_KEY_FIELDS, frame.frame_key))
    return ", ".join(f"{k}={v}" for k, v in values.items() if k in ("slice", "repetition", "contrast") or v)
