"""``igrog batch``: replay many ISMRMRD files on a Dask ``distributed`` cluster.

Each file is one task: a worker runs ``igrog replay`` for it in a child process (so a crash,
a leak or an out-of-memory kill costs that file only, and the child's peak memory is exact),
with ``gridding.cpu_threads`` set so that workers x threads <= cores. The output is the file
``igrog replay`` writes (same configuration, same bytes of k-space), written atomically by it.

Faults: a file that fails is reported (its error message) and the batch goes on; a worker
that dies while gridding a file makes the scheduler retry that file once on another worker
(``distributed.scheduler.allowed-failures = 1``), then it is reported failed; partial files of
killed replays are removed. A rerun skips files whose output exists and records the same
configuration (``igrog.config`` in its header, threads included) and igrog version.
"""

from __future__ import annotations

import csv
import glob
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Iterable, Sequence

from igrog_gadget import __version__
from igrog_gadget.config import IgrogConfig
from igrog_gadget.errors import InputDataError

logger = logging.getLogger(__name__)

#: File name patterns taken from a directory given as input.
INPUT_SUFFIXES = (".h5", ".hdf5", ".mrd")
#: Times the scheduler may lose a worker while it grids one file before that file fails.
ALLOWED_WORKER_FAILURES = 1


@dataclass
class FileResult:
    """One row of the batch report."""

    input: str
    output: str
    status: str
    """"done", "skipped" (output up to date) or "failed"."""
    frames: int = 0
    training_steps: int = 0
    estimated_nrmse: float | None = None
    """Largest estimated gridding error over the file's frames."""
    seconds: float = 0.0
    peak_memory_mb: float = 0.0
    """Peak resident memory of the replay's process."""
    error: str = ""


# --------------------------------------------------------------------------------------------
# inputs and outputs
# --------------------------------------------------------------------------------------------
def find_inputs(items: Sequence[str]) -> list[Path]:
    """Files named by ``items``: files, directories (their ``*.h5/.hdf5/.mrd``) and glob patterns.

    Raises:
        InputDataError: an item that names nothing, or no file at all.
    """
    found: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in INPUT_SUFFIXES)
        elif path.is_file():
            found.append(path)
        else:
            matches = sorted(Path(p) for p in glob.glob(item, recursive=True) if Path(p).is_file())
            if not matches:
                raise InputDataError(f"input {item!r} is no file, directory or matching pattern")
            found += matches
    unique = list(dict.fromkeys(p.resolve() for p in found))
    if not unique:
        raise InputDataError("no input files (directories hold no .h5 / .hdf5 / .mrd files)")
    return unique


def output_paths(inputs: Sequence[Path], out_dir: Path) -> list[Path]:
    """``out_dir/<stem>_cartesian.h5`` per input.

    Raises:
        InputDataError: two inputs with the same stem (their outputs would collide).
    """
    outputs = [out_dir / f"{p.stem}_cartesian.h5" for p in inputs]
    seen: dict[Path, Path] = {}
    for source, target in zip(inputs, outputs):
        if target in seen:
            raise InputDataError(f"inputs {seen[target]} and {source} would both write {target}; rename one")
        seen[target] = source
    return outputs


#: Configuration fields that change how a replay runs, not what it computes (left out of the
#: record). The thread count is not one: torch's CPU reductions differ in the last bits with it
#: (about 1e-5 relative), so outputs are reused only for the same ``gridding.cpu_threads``.
RUN_ONLY_FIELDS = ("progress",)


def configuration_record(config_toml: str, version: str = __version__) -> str:
    """What an output must record to count as up to date: the igrog version and the
    configuration TOML without ``RUN_ONLY_FIELDS`` (the progress bar)."""
    lines = [
        line for line in config_toml.splitlines()
        if line.split("=", 1)[0].strip() not in RUN_ONLY_FIELDS
    ]
    return version + "\n" + "\n".join(lines)


def output_is_current(output: Path, record: str) -> bool:
    """True when ``output`` exists and its header records ``record`` (``configuration_record``)."""
    if not output.is_file():
        return False
    try:
        params = _output_parameters(output)
    except Exception as error:  # noqa: BLE001 - an unreadable output is simply not current
        logger.info("output %s is not reused: %s", output, error)
        return False
    recorded = configuration_record(str(params.get("igrog.config", "")), str(params.get("igrog.version", "")))
    return recorded == record


def _output_parameters(output: Path) -> dict:
    """The user parameters of an output file's ISMRMRD header."""
    import h5py

    from igrog_gadget.io.convert import parse_header

    with h5py.File(output, "r") as h5:
        xml = h5["dataset/xml"][0]
    return parse_header(xml.decode() if isinstance(xml, bytes) else str(xml)).user_parameters


# --------------------------------------------------------------------------------------------
# one file (runs on a worker)
# --------------------------------------------------------------------------------------------
def replay_in_child(input_path: str, output_path: str, replay_args: list[str], threads: int) -> dict:
    """Run ``igrog replay`` for one file in a child process; the report row as a dict.

    Never raises for a failing file: its status is "failed" and ``error`` its message.
    """
    command = [
        sys.executable, "-m", "igrog_gadget", "-q", "replay", input_path, output_path, *replay_args,
        "--set", f"gridding.cpu_threads={threads}",
    ]
    started = time.perf_counter()
    _remove_partials(Path(output_path))  # left by an earlier attempt whose worker was killed
    child = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
    )
    assert child.stderr is not None  # stderr=PIPE
    try:
        with child.stderr:
            stderr = child.stderr.read()
        _, status, usage = os.wait4(child.pid, 0)
    except BaseException:
        child.kill()
        child.wait()
        _remove_partials(Path(output_path))
        raise
    child.returncode = os.waitstatus_to_exitcode(status)
    row = FileResult(input_path, output_path, "done", seconds=time.perf_counter() - started,
                     peak_memory_mb=usage.ru_maxrss / 1024.0)
    if child.returncode != 0:
        _remove_partials(Path(output_path))
        row.status = "failed"
        row.error = _error_message(stderr, child.returncode)
        return asdict(row)
    row.frames, row.training_steps, row.estimated_nrmse = _frame_facts(Path(output_path))
    return asdict(row)


def _die_with_parent() -> None:
    """In the replay child (Linux): be killed when the worker that started it dies, so that no
    orphan keeps gridding (and writing) a file the scheduler has already handed to another worker."""
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _error_message(stderr: str, returncode: int) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith(("ERROR", "CRITICAL"))]
    if lines:
        return lines[-1].split(": ", 1)[-1]
    if returncode < 0:
        return f"replay killed by signal {-returncode}"
    return (stderr.strip().splitlines() or [f"replay exited with code {returncode}"])[-1]


def _frame_facts(output: Path) -> tuple[int, int, float | None]:
    """(frames, training steps, largest estimated NRMSE) from the output header's igrog.frames."""
    params = _output_parameters(output)
    frames = json.loads(str(params.get("igrog.frames", "[]")))
    steps = sum(int(f.get("training_steps") or 0) for f in frames)
    estimates = [float(f["estimated_nrmse"]) for f in frames if f.get("estimated_nrmse") is not None]
    return len(frames), steps, (max(estimates) if estimates else None)


def _remove_partials(output: Path) -> None:
    """Remove ``<output>.partial-*.h5`` files a killed replay left beside ``output``."""
    for partial in output.parent.glob(f"{output.name}.partial-*.h5"):
        try:
            partial.unlink()
        except OSError as error:
            logger.warning("could not remove %s: %s", partial, error)


# --------------------------------------------------------------------------------------------
# the batch
# --------------------------------------------------------------------------------------------
def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """Torch threads of each worker's replays: workers x threads <= cores (at least 1)."""
    cores = cores or os.cpu_count() or 1
    return max(1, cores // max(1, workers))


def run_batch(
    inputs: Sequence[Path],
    out_dir: Path,
    replay_args: list[str],
    config: IgrogConfig,
    scheduler: str | None = None,
    workers: int = 2,
    report_path: Path | None = None,
    progress: bool = True,
) -> list[FileResult]:
    """Replay every input on a Dask cluster (a LocalCluster of ``workers`` processes when no
    ``scheduler`` address is given; none is started when every output is up to date); returns
    (and writes to ``report_path``) one row per file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = output_paths(inputs, out_dir)
    threads = threads_per_worker(workers) if scheduler is None else threads_per_worker(1)
    record = configuration_record(_with_threads(config, threads).to_toml())
    rows: dict[str, FileResult] = {}
    pending = []
    for source, target in zip(inputs, outputs):
        if output_is_current(target, record):
            rows[str(source)] = FileResult(str(source), str(target), "skipped")
        else:
            pending.append((source, target))
    logger.info("%d file(s): %d to grid, %d up to date", len(inputs), len(pending), len(inputs) - len(pending))
    if pending:
        rows.update(_grid_on_cluster(pending, replay_args, threads, scheduler, workers, progress))
    ordered = [rows[str(p)] for p in inputs]
    if report_path is not None:
        write_report(report_path, ordered)
    return ordered


def _grid_on_cluster(
    pending: list[tuple[Path, Path]],
    replay_args: list[str],
    threads: int,
    scheduler: str | None,
    workers: int,
    progress: bool,
) -> dict[str, FileResult]:
    """Replay each (input, output) of ``pending`` on the cluster; one row per input path."""
    import dask
    from distributed import Client, LocalCluster, as_completed
    from distributed.client import FutureCancelledError

    rows: dict[str, FileResult] = {}
    with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_WORKER_FAILURES}):
        cluster = None
        if scheduler is None:
            cluster = LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=logging.ERROR
            )
            client = Client(cluster)
        else:  # each remote worker runs one file at a time with this machine's core count as threads
            client = Client(scheduler)
        print(f"dask dashboard: {client.dashboard_link}", file=sys.stderr, flush=True)
        futures = {}
        try:
            for source, target in pending:
                future = client.submit(
                    replay_in_child, str(source), str(target), list(replay_args), threads,
                    key=f"igrog-replay-{source.name}-{time.time_ns()}", pure=False,
                )
                futures[future] = (source, target)
            bar = _progress(len(futures), progress)
            for future in as_completed(list(futures)):
                source, target = futures.pop(future)
                try:
                    rows[str(source)] = FileResult(**future.result())
                except FutureCancelledError:
                    raise KeyboardInterrupt from None
                except Exception as error:  # noqa: BLE001 - KilledWorker and the like fail the file, not the batch
                    _remove_partials(target)
                    name = type(error).__name__
                    reason = "the worker died while gridding it (killed or out of memory), twice" if name == "KilledWorker" else str(error)
                    rows[str(source)] = FileResult(str(source), str(target), "failed", error=f"{name}: {reason}")
                future.release()  # its row is here: a worker lost later must not recompute the file
                row = rows[str(source)]
                if row.status == "failed":
                    logger.error("%s: %s", source, row.error)
                bar.update(1)
            bar.close()
        except KeyboardInterrupt:
            client.cancel(list(futures))
            for _, target in futures.values():
                _remove_partials(target)
            raise
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    for _, target in pending:
        _remove_partials(target)
    return rows


def _with_threads(config: IgrogConfig, threads: int) -> IgrogConfig:
    """``config`` with ``gridding.cpu_threads = threads`` (what the workers' replays record)."""
    import dataclasses

    return dataclasses.replace(config, gridding=dataclasses.replace(config.gridding, cpu_threads=threads))


def write_report(path: Path, rows: Iterable[FileResult]) -> None:
    """The batch report: CSV (``.csv``) or JSON lines (any other suffix)."""
    rows = list(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".csv":
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=[f.name for f in fields(FileResult)])
            writer.writeheader()
            for row in rows:
                writer.writerow(asdict(row))
    else:
        with path.open("w") as handle:
            for row in rows:
                handle.write(json.dumps(asdict(row)) + "\n")


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="files", unit="file", disable=not enabled or total == 0)
