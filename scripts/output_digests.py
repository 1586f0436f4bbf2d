"""Digests of ``igrog replay``'s outputs over the recorded files and the benchmarks' layouts: the
check that a change of the code's shape leaves every output bit for bit as it was.

    python scripts/output_digests.py --write before.json      # on the old tree
    python scripts/output_digests.py --check before.json      # on the new tree: exit 1 on a change

Each case replays one ISMRMRD file (the recorded ones under ``tests/data``, the embedded sample,
and files simulated here: multi-slice, stack-of-stars, 3D kooshball and stack-of-spirals, a
self-calibrated spiral) with one variant and configuration, and hashes what the output file holds
that does not depend on timing: every acquisition (header, trajectory, data) and every image's
header and pixels. The XML header and the image meta (which carry seconds) are left out.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's package (a worktree's), whatever is installed
DATA = ROOT / "tests" / "data"
SAMPLE = ROOT / "igrog_gadget" / "data" / "sample_radial.h5"

KOOSHBALL = ["--trajectory", "kooshball", "--matrix", "16", "--coils", "4", "--spokes", "400", "--acs", "16"]

#: name -> (file, simulation arguments or None for a recorded file, replay arguments)
CASES: dict[str, tuple[str, list[str] | None, list[str]]] = {
    "sample": (str(SAMPLE), None, []),
    "radial_acs": (str(DATA / "radial_acs.h5"), None, []),
    "radial_acs_network": (str(DATA / "radial_acs.h5"), None, ["--set", "training.fit=network", "--set", "training.max_steps=60"]),
    "radial_selfcal": (str(DATA / "radial_selfcal.h5"), None, []),
    "radial_multi": (str(DATA / "radial_multi.h5"), None, []),
    "spiral_acs": (str(DATA / "spiral_acs.h5"), None, []),
    "spiral_b0_fieldcorr": (str(DATA / "spiral_b0.h5"), None, ["--variant", "fieldcorr"]),
    "spiral_b0_fieldcorr_kernel": (
        str(DATA / "spiral_b0.h5"), None,
        ["--variant", "fieldcorr", "--set", "fieldcorr.mode=kernel", "--set", "training.max_steps=60"],
    ),
    "radial_acs_image_based": (str(DATA / "radial_acs.h5"), None, ["--variant", "image_based"]),
    "spiral_selfcal": ("spiral_selfcal.h5", ["--trajectory", "spiral", "--interleaves", "12", "--acs", "none", "--coils", "6", "--matrix", "64"], []),
    "stack_of_stars": ("sos.h5", ["--trajectory", "radial", "--matrix", "48", "--coils", "4", "--spokes", "48", "--partitions", "4"], []),
    "kooshball": ("koosh.h5", KOOSHBALL, ["--set", "training.volume.max_steps=100"]),
    "kooshball_closed_form": ("koosh.h5", KOOSHBALL, ["--set", "training.volume.fit=closed_form", "--set", "gridding.neighbour_sources=2"]),
    "stack_of_spirals": (
        "sospiral.h5", ["--trajectory", "stack_of_spirals", "--matrix", "32", "--coils", "4", "--interleaves", "12", "--partitions", "16", "--acs", "16"],
        ["--set", "training.volume.max_steps=100"],
    ),
    "compressed_virtual": (
        "many_coils.h5", ["--trajectory", "radial", "--matrix", "64", "--coils", "16", "--spokes", "64"],
        ["--set", "gridding.coil_compression=on", "--set", "gridding.output_coils=virtual"],
    ),
}


def digest_file(path: Path) -> str:
    """SHA-256 of an output file's acquisitions and images (not its XML header nor image meta)."""
    digest = hashlib.sha256()
    with h5py.File(path, "r") as handle:
        group = handle["dataset"]
        for name in sorted(group):
            item = group[name]
            if name == "data":  # acquisitions: head, traj, data of each
                for row in item[()]:
                    digest.update(row["head"].tobytes())
                    digest.update(np.asarray(row["traj"]).tobytes())
                    digest.update(np.asarray(row["data"]).tobytes())
            elif isinstance(item, h5py.Group) and "data" in item:  # an image series
                header = item["header"][()]
                fields = [f for f in header.dtype.names if f != "attribute_string_len"]
                digest.update(name.encode())
                digest.update(header[fields].tobytes())
                digest.update(np.ascontiguousarray(item["data"][()]).tobytes())
    return digest.hexdigest()


def run_case(name: str, workdir: Path) -> str:
    """Replay one case into ``workdir`` (simulating its input first when needed): its digest."""
    from igrog_gadget.cli import main as igrog_main
    from igrog_gadget.simulate.cli import main as simulate_main

    source, simulation, replay_args = CASES[name]
    path = Path(source)
    if simulation is not None:
        path = workdir / source
        if not path.exists():
            simulate_main([*simulation, "--snr", "40", "--seed", "3", str(path)])
    output = workdir / f"{name}.out.h5"
    code = igrog_main(["-q", "replay", str(path), str(output), *replay_args])
    if code not in (0, None):
        raise SystemExit(f"{name}: igrog replay exited with {code}")
    return digest_file(output)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", type=Path, help="write the digests to this JSON file")
    action.add_argument("--check", type=Path, help="compare with the digests of this JSON file")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated case names")
    args = parser.parse_args(argv)
    names = [n for n in args.cases.split(",") if n]
    unknown = [n for n in names if n not in CASES]
    if unknown:
        parser.error(f"unknown cases {unknown}; known: {', '.join(CASES)}")
    with tempfile.TemporaryDirectory() as folder:
        digests = {name: run_case(name, Path(folder)) for name in names}
    if args.write:
        args.write.write_text(json.dumps(digests, indent=1) + "\n")
        print(f"wrote {len(digests)} digests to {args.write}")
        return 0
    expected = json.loads(args.check.read_text())
    changed = [n for n in names if expected.get(n) != digests[n]]
    for name in names:
        print(f"{name:28s} {'same' if name not in changed else 'CHANGED'}")
    print(f"{len(names) - len(changed)} of {len(names)} outputs bit-identical")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
