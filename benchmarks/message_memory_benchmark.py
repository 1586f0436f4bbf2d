"""What one large message costs a running ``igrog serve`` in memory (whole process, peak RSS).

Starts ``igrog serve`` in a subprocess, sends a handshake, then one large message that passes
through the gadget untouched (a noise-scan ACQUISITION, a RECONDATA buffer), then CLOSE, and
reads the server's peak resident set (``VmHWM`` of ``/proc/PID/status``) before and after.
Prints one row per message: its size, the peak RSS increase and their ratio.

    python benchmarks/message_memory_benchmark.py [--mb 256]
"""

from __future__ import annotations

import argparse
import struct
import sys
import tempfile
import time
from pathlib import Path

import ismrmrd
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "gadget"))

from gadget_helpers import start_server_process  # noqa: E402
from benchmarks.tables import print_rows  # noqa: E402
from igrog_gadget.gadget import protocol  # noqa: E402
from igrog_gadget.gadget.client import StreamClient, configuration_xml  # noqa: E402
from igrog_gadget.io import read_dataset  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "radial_acs.h5"


def peak_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc status")


def noise_acquisition(megabytes: float) -> bytes:
    coils = 64
    samples = int(megabytes * (1 << 20) / (8 * coils))
    samples = min(samples, 65535)
    coils = int(megabytes * (1 << 20) / (8 * samples))
    acq = ismrmrd.Acquisition.from_array(np.ones((coils, samples), np.complex64))
    acq.set_flag(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)
    return protocol.encode_acquisition(acq)


def recon_data(megabytes: float) -> bytes:
    u64 = struct.Struct("<Q").pack
    e0 = int(megabytes * (1 << 20) / 8 / 256)
    dims = (e0, 256, 1, 1, 1, 1, 1)
    data = u64(7) + b"".join(u64(d) for d in dims) + np.ones(int(np.prod(dims)), np.complex64).tobytes()
    headers = u64(5) + b"".join(u64(d) for d in (1, 1, 1, 1, 1)) + bytes(protocol.ACQUISITION_HEADER_SIZE)
    sampling = bytes(56)
    return struct.pack("<H", protocol.RECONDATA) + u64(1) + data + b"\x00\x00" + headers + sampling + b"\x00"


def measure(name: str, message: bytes, header_xml: str, workdir: Path) -> dict:
    process, port = start_server_process(["--max-message-mb", "2048", "--limit", "max_coils=1024", "-q"], workdir / f"{name}.log")
    try:
        time.sleep(1.0)
        before = peak_rss_bytes(process.pid)
        with StreamClient.connect("127.0.0.1", port) as client:
            client.send_handshake(configuration_xml({}), header_xml)
            client.send(message)
            client.send_close()
            received = client.wait_closed(120)
        after = peak_rss_bytes(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=20)
    echoed = sum(len(m.raw) for m in received.messages if m.mid != protocol.CLOSE)
    increase = after - before
    return {
        "message": name,
        "size MiB": f"{len(message) / (1 << 20):.0f}",
        "peak RSS +MiB": f"{increase / (1 << 20):.0f}",
        "ratio": f"{increase / len(message):.2f}",
        "echoed intact": echoed == len(message),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=256.0, help="size of each message, MiB (default 256)")
    args = parser.parse_args(argv)
    header_xml = read_dataset(DATA).header_xml
    with tempfile.TemporaryDirectory() as tmp:
        rows = [
            measure("ACQUISITION (noise, passed through)", noise_acquisition(args.mb), header_xml, Path(tmp)),
            measure("RECONDATA (passed through)", recon_data(args.mb), header_xml, Path(tmp)),
        ]
    print_rows(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
