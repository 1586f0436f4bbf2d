"""The ``igrog serve`` subcommand: arguments and runner (hooked into :mod:`igrog_gadget.cli`)."""

from __future__ import annotations

import argparse
import logging
import signal
import threading

logger = logging.getLogger(__name__)


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``igrog serve``."""
    from igrog_gadget.gadget.server import DEFAULT_GADGETRON_PORT, DEFAULT_MRD_PORT
    from igrog_gadget.gadget.settings import OUTPUT_MODES

    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help=f"TCP port (default {DEFAULT_GADGETRON_PORT}, or {DEFAULT_MRD_PORT} with --mrd; 0 = any free port)",
    )
    parser.add_argument("--host", default="", help="address to bind (default: all interfaces)")
    parser.add_argument(
        "--mrd",
        action="store_true",
        help="serve MRD clients (python-ismrmrd-server client, OpenRecon): images back, errors as TEXT",
    )
    parser.add_argument("--variant", default="basic", help="default variant: basic | image_based | fieldcorr")
    parser.add_argument("--config", default=None, help="default TOML configuration file")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help="default configuration override (repeatable); a connection's properties come after these",
    )
    parser.add_argument("--device", default=None, help="default device: auto | cpu | cuda | cuda:N")
    parser.add_argument(
        "--output",
        default=None,
        choices=OUTPUT_MODES,
        help="default output (default: recondata for Gadgetron peers, images with --mrd)",
    )
    parser.add_argument(
        "--cpu-threads", type=int, default=0,
        help="torch CPU threads of the whole server, set once at start (default 0: torch's default, all cores); "
        "sessions never change it, so a stream's result does not depend on the others",
    )
    parser.add_argument("--max-connections", type=int, default=16, help="concurrent connections (default 16)")
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=600.0,
        help="seconds a connection may stay silent between messages (0 = no limit; default 600)",
    )
    parser.add_argument(
        "--read-timeout", type=float, default=60.0, help="seconds a peer may stall inside a message (default 60)"
    )
    parser.add_argument(
        "--max-message-mb", type=float, default=1024.0, help="largest message accepted, MiB (default 1024)"
    )


def run_serve(args: argparse.Namespace) -> int:
    """Run the server until SIGINT / SIGTERM; returns the exit code."""
    from igrog_gadget.gadget.protocol import ProtocolLimits
    from igrog_gadget.gadget.server import DEFAULT_GADGETRON_PORT, DEFAULT_MRD_PORT, GadgetServer, ServerOptions
    from igrog_gadget.gadget.session import Dialect
    from igrog_gadget.gadget.settings import GadgetSettings

    defaults = GadgetSettings(
        variant=args.variant,
        config_file=args.config,
        overrides=list(args.overrides),
        device=args.device,
        output=args.output,
    )
    if args.cpu_threads < 0:
        from igrog_gadget.errors import ConfigError

        raise ConfigError(f"--cpu-threads must be >= 0, got {args.cpu_threads}")
    if args.cpu_threads > 0:
        import torch

        torch.set_num_threads(args.cpu_threads)
    dialect = Dialect.MRD if args.mrd else Dialect.GADGETRON
    if dialect is Dialect.MRD and defaults.output == "recondata":
        from igrog_gadget.errors import ConfigError

        raise ConfigError("--output recondata is for Gadgetron peers; MRD clients read images or acquisitions")
    config = defaults.igrog_config()  # validate the defaults before listening
    import igrog_gadget.stream.pipeline  # noqa: F401  (torch and the variants load now, not on the first scan)
    from engine import resolve_device
    from igrog_gadget.errors import ConfigError

    try:
        device = resolve_device(config.gridding.device)
    except ValueError as error:
        raise ConfigError(f"--device / gridding.device: {error}") from None
    logger.info("default device: %s", device)

    port = args.port if args.port is not None else (DEFAULT_MRD_PORT if args.mrd else DEFAULT_GADGETRON_PORT)
    limits = ProtocolLimits(
        max_message_bytes=int(args.max_message_mb * (1 << 20)),
        idle_timeout_s=args.idle_timeout if args.idle_timeout and args.idle_timeout > 0 else None,
        read_timeout_s=args.read_timeout,
    )
    options = ServerOptions(host=args.host, port=port, dialect=dialect, max_connections=args.max_connections)
    server = GadgetServer(options, defaults, limits)

    def stop(signum: int, _frame: object) -> None:
        logger.info("signal %d: shutting down", signum)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"listening on port {server.port}", flush=True)
    server.serve_forever()
    server.shutdown()
    return 0
