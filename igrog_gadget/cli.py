"""The ``igrog`` command: replay ISMRMRD files through the gadget's pipeline, pipe MRD streams, simulate test data."""

from __future__ import annotations

import argparse
import logging
import sys
import typing
from pathlib import Path

from igrog_gadget.environment import configure_process, set_thread_counts
from igrog_gadget.errors import IgrogError, InputDataError

logger = logging.getLogger("igrog_gadget.cli")

SAMPLE_FILE = Path(__file__).resolve().parent / "data" / "sample_radial.h5"

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2


def _add_variant_arguments(parser: argparse.ArgumentParser) -> None:
    from igrog_gadget.config import DEVICES, VARIANTS

    parser.add_argument("--variant", default="basic", help=f"{' | '.join(VARIANTS)} (default: basic)")
    parser.add_argument("--config", default=None, help="TOML file overriding the variant's standard configuration")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="SECTION.FIELD=VALUE",
        help="override one configuration field, e.g. --set training.max_steps=600 (repeatable)",
    )
    parser.add_argument("--device", default=None, help=f"{' | '.join(DEVICES)} (default: the configuration's)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="igrog", description="Implicit GROG gridding of non-Cartesian ISMRMRD data.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only, no progress bars")
    commands = parser.add_subparsers(dest="command", required=True)

    verbosity = argparse.ArgumentParser(add_help=False)  # -v / -q also after the command name
    verbosity.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log debug messages")
    verbosity.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                           help="log warnings and errors only, no progress bars")
    replay = commands.add_parser("replay", parents=[verbosity], help="grid an ISMRMRD file into a Cartesian ISMRMRD file")
    replay.add_argument("input", nargs="?", default=None, help=f"input ISMRMRD HDF5 file (default: the embedded sample {SAMPLE_FILE.name})")
    replay.add_argument("output", nargs="?", default=None, help="output file (default: <input stem>_cartesian.h5 in the current directory)")
    _add_variant_arguments(replay)
    replay.add_argument("--png", default=None, help="also write the frames' images ([recon]: SENSE of undersampled frames, else RSS) as a PNG")
    replay.add_argument("--images", action="store_true", help="also write the frames' images into the output (image series igrog_image)")

    batch = commands.add_parser(
        "batch", parents=[verbosity], help="replay many ISMRMRD files on a Dask cluster (pip install igrog-gadget[batch])"
    )
    batch.add_argument("inputs", nargs="+", help="ISMRMRD files, directories (their .h5/.hdf5/.mrd) or glob patterns")
    batch.add_argument("--out", required=True, help="output directory: <stem>_cartesian.h5 per input")
    _add_variant_arguments(batch)
    batch.add_argument("--scheduler", default=None, help="address of a running Dask scheduler (default: a LocalCluster here)")
    batch.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes (default 2); one file per worker at a time")
    batch.add_argument("--report", default=None, help="report file: .csv, else JSON lines (default: <out>/batch_report.csv)")

    pipe = commands.add_parser(
        "pipe", parents=[verbosity],
        help="grid an MRD v2 or ISMRMRD v1 stream from stdin to stdout (a stage of a Pingvin pipe; pip install igrog-gadget[mrd])",
    )
    pipe.add_argument("-i", "--input", default=None, help="input stream file (default: stdin)")
    pipe.add_argument("-o", "--output", default=None, help="output stream file (default: stdout)")
    _add_variant_arguments(pipe)
    pipe.add_argument("--emit", choices=("acquisitions", "images"), default="acquisitions",
                      help="gridded frames as Cartesian acquisitions (default) or as images")
    pipe.add_argument("--format", dest="output_format", choices=("mrd2", "ismrmrd"), default=None,
                      help="output stream format (default: the input's)")

    simulate = commands.add_parser("simulate", parents=[verbosity], help="write a simulated ISMRMRD test file with its Cartesian ground truth")
    from igrog_gadget.simulate import add_simulate_arguments

    add_simulate_arguments(simulate)

    serve = commands.add_parser("serve", parents=[verbosity], help="serve Gadgetron <connect> peers (or MRD clients with --mrd) over TCP")
    from igrog_gadget.gadget.cli import add_serve_arguments

    add_serve_arguments(serve)
    return parser


def _run_batch(args: argparse.Namespace) -> int:
    from igrog_gadget.config import load_config
    from igrog_gadget.errors import ConfigError
    from igrog_gadget.limits import ResourceLimits

    try:
        from igrog_gadget.batch import find_inputs, run_batch
        import distributed  # noqa: F401
    except ImportError:
        raise ConfigError("igrog batch needs Dask's distributed: pip install 'igrog-gadget[batch]'") from None
    if args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")
    if not args.verbose:  # the scheduler's and nannies' own INFO lines (start, stop) only with -v
        logging.getLogger("distributed").setLevel(logging.ERROR)
    overrides = list(args.overrides) + ([f"gridding.device={args.device}"] if args.device else [])
    config = load_config(args.variant, args.config, overrides)  # refuse a bad configuration before any work
    ResourceLimits().check_config(config)
    replay_args = ["--variant", args.variant] + (["--config", str(Path(args.config).resolve())] if args.config else [])
    for override in overrides:
        replay_args += ["--set", override]
    inputs = find_inputs(args.inputs)
    out_dir = Path(args.out).resolve()
    report = Path(args.report).resolve() if args.report else out_dir / "batch_report.csv"
    rows = run_batch(inputs, out_dir, replay_args, config, args.scheduler, args.workers, report, progress=not args.quiet)
    counts = {status: sum(r.status == status for r in rows) for status in ("done", "skipped", "failed")}
    logger.info("%d done, %d skipped (up to date), %d failed; report %s", counts["done"], counts["skipped"], counts["failed"], report)
    print(report)
    return EXIT_OK if counts["failed"] == 0 else EXIT_FAILURE


def _run_replay(args: argparse.Namespace) -> int:
    from igrog_gadget.config import load_config
    from igrog_gadget.replay import read_replay_input, replay_file

    overrides = list(args.overrides)
    if args.device:
        overrides.append(f"gridding.device={args.device}")
    if not args.quiet:
        overrides.insert(0, "training.progress=true")
    config = load_config(args.variant, args.config, overrides)
    configure_process()  # before any file is opened
    input_path = Path(args.input) if args.input else SAMPLE_FILE
    output_path = Path(args.output) if args.output else Path.cwd() / f"{input_path.stem}_cartesian.h5"
    dataset = read_replay_input(input_path, output_path, config, png_path=args.png)  # bad input: refused without torch
    set_thread_counts(config.gridding.cpu_threads)  # once per process, before any work: results never depend on load
    report = replay_file(
        input_path, output_path, config, show_progress=not args.quiet, png_path=args.png, dataset=dataset, with_images=args.images
    )
    first = report.frames[0].report
    for frame in report.frames:
        if frame.report is not None and frame.report.training is not None:
            logger.info(
                "frame %s: training %s, estimated gridding NRMSE %.3g",
                frame.frame_key, frame.report.training.stop, frame.report.estimated_nrmse,
            )
    logger.info(
        "wrote %s: %d frame(s), %d pass-through acquisition(s); training %.2f s, gridding %.2f s, total %.2f s (%s, %s)",
        output_path, len(report.frames), report.passthrough, report.training_seconds, report.gridding_seconds,
        report.seconds, first.device if first else "?", first.training.calibration if first and first.training else "?",
    )
    if args.png:
        logger.info("wrote %s", args.png)
    print(output_path)
    return EXIT_OK


def _run_pipe(args: argparse.Namespace) -> int:
    from igrog_gadget.config import load_config
    from igrog_gadget.pipe import run_pipe

    overrides = list(args.overrides) + ([f"gridding.device={args.device}"] if args.device else [])
    config = load_config(args.variant, args.config, overrides)
    set_thread_counts(config.gridding.cpu_threads)
    if args.input is not None and not Path(args.input).is_file():
        raise InputDataError(f"input stream {args.input!r} does not exist or is not a file")
    source = open(args.input, "rb") if args.input else sys.stdin.buffer
    # _LazyOutput has the write, flush and close a sink is used for
    sink = typing.cast(typing.BinaryIO, _LazyOutput(args.output)) if args.output else sys.stdout.buffer
    try:
        report = run_pipe(
            source, sink, config, output=args.emit, output_format=args.output_format, name=args.input or "stdin"
        )
    finally:
        if args.input:
            source.close()
        if args.output:
            sink.close()
    logger.info(
        "%s -> %s: %d items in, %d out, %d frame(s) in %.2f s",
        report.input_format, report.output_format, report.items_in, report.items_out, report.frames, report.seconds,
    )
    return EXIT_OK


class _LazyOutput:
    """An output file opened at its first write (a stream refused at its header leaves none)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._file: typing.BinaryIO | None = None

    def write(self, data: bytes) -> int:
        if self._file is None:
            self._file = open(self.path, "wb")
        return self._file.write(data)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``igrog`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:  # per-epoch loss lines only with -v; the progress bar shows the loss
        logging.getLogger("igrog_engine").setLevel(logging.WARNING)
    configure_process()  # the environment; the thread count once the command's configuration is known
    try:
        if args.command == "replay":
            return _run_replay(args)
        if args.command == "batch":
            return _run_batch(args)
        if args.command == "pipe":
            return _run_pipe(args)
        if args.command == "simulate":
            from igrog_gadget.simulate import run_simulate

            return run_simulate(args)
        if args.command == "serve":
            from igrog_gadget.gadget.cli import run_serve

            return run_serve(args)
        parser.error(f"unknown command {args.command}")
    except IgrogError as error:  # the user's input or configuration: one message naming it
        logger.error("%s", error)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        logger.error("interrupted")
        return EXIT_FAILURE
    except Exception as error:  # noqa: BLE001 - a bug, never the user's fault: its traceback, exit 1
        logger.exception("internal error: %s: %s (please report)", type(error).__name__, error)
        return EXIT_FAILURE
    return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
