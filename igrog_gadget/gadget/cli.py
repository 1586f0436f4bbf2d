"""The ``igrog serve`` subcommand: arguments and runner (hooked into :mod:`igrog_gadget.cli`)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import socket

    from igrog_gadget.gadget.settings import GadgetSettings
    from igrog_gadget.limits import ResourceLimits

logger = logging.getLogger(__name__)

#: Smallest ``--max-session-mb``: below it a session's threads may fail to start (a 64² 8-coil scan
#: needs about 50 MiB beyond its warmed worker).
MIN_SESSION_MB = 64.0


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``igrog serve``."""
    from igrog_gadget.config import VARIANTS
    from igrog_gadget.gadget.settings import DEFAULT_GADGETRON_PORT, DEFAULT_MRD_PORT, OUTPUT_MODES

    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help=f"TCP port (default {DEFAULT_GADGETRON_PORT}, or {DEFAULT_MRD_PORT} with --mrd; 0 = any free port)",
    )
    parser.add_argument(
        "--host", default="127.0.0.1",
        help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 or :: exposes the server, "
        "which has no authentication, to the network: see docs/gadget.md)",
    )
    parser.add_argument(
        "--data-dir", default=None,
        help="directory whose regular files a connection may name (config property, fieldcorr.b0map_file, "
        "image_calibration.image_file); default: none, file properties are refused",
    )
    parser.add_argument("--max-file-mb", type=float, default=1024.0, help="largest file a connection may name, MiB (default 1024)")
    parser.add_argument(
        "--limit", dest="limits", action="append", default=[], metavar="NAME=VALUE",
        help="resource limit of every connection (repeatable), e.g. max_matrix=512, max_coils=64, "
        "max_training_seconds=300, max_training_pairs=500000, max_buffered_samples=...; names as in "
        "igrog_gadget.limits.ResourceLimits",
    )
    parser.add_argument(
        "--max-session-mb", type=float, default=2048.0,
        help="per connection: MiB of memory its session may use beyond its warmed-up worker process, "
        "enforced by the OS with --isolation process (RLIMIT_DATA), and MiB of messages read ahead while "
        "it trains (default 2048)",
    )
    parser.add_argument(
        "--isolation", choices=("process", "thread"), default="process",
        help="process (default): each connection's session in a worker process of its own, so that a "
        "session killed, out of memory or crashed ends alone; thread: every session in this process",
    )
    parser.add_argument(
        "--spare-workers", type=int, default=2,
        help="--isolation process: worker processes kept started and warmed for the next connections "
        "(default 2)",
    )
    parser.add_argument(
        "--handshake-timeout", type=float, default=30.0,
        help="seconds from connecting to a complete configuration + header (default 30)",
    )
    parser.add_argument(
        "--mrd",
        action="store_true",
        help="serve MRD clients (python-ismrmrd-server client, OpenRecon): images back, errors as TEXT",
    )
    parser.add_argument("--variant", default="basic", help=f"default variant: {' | '.join(VARIANTS)}")
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
        default=300.0,
        help="seconds a connection may stay silent between messages after its handshake (0 = no limit; "
        "default 300: a scanner pausing between measurements)",
    )
    parser.add_argument(
        "--read-timeout", type=float, default=60.0, help="seconds a peer may stall inside a message (default 60)"
    )
    parser.add_argument(
        "--message-deadline", type=float, default=20.0,
        help="base seconds one whole message may take from its first byte to its last; its size at "
        "--min-message-rate comes on top (default 20)",
    )
    parser.add_argument(
        "--min-message-rate", type=float, default=10.0,
        help="MB/s a message is allowed at the least beyond --message-deadline (default 10: a 256 MiB "
        "message has 47 s)",
    )
    parser.add_argument(
        "--max-message-mb", type=float, default=1024.0, help="largest message accepted, MiB (default 1024)"
    )


def _parse_limits(items: list[str]) -> dict[str, float]:
    """``--limit NAME=VALUE`` arguments as a dict (ConfigError on a malformed one)."""
    from igrog_gadget.errors import ConfigError

    values: dict[str, float] = {}
    for item in items:
        name, sep, text = item.partition("=")
        try:
            values[name.strip()] = float(text)
        except ValueError:
            raise ConfigError(f"--limit {item!r}: expected NAME=NUMBER") from None
        if not sep:
            raise ConfigError(f"--limit {item!r}: expected NAME=NUMBER")
    return values


def run_serve(args: argparse.Namespace) -> int:
    """Run the server until SIGINT / SIGTERM; returns the exit code."""
    from igrog_gadget.errors import ConfigError
    from igrog_gadget.gadget.server_options import bind_listener, listen_backlog
    from igrog_gadget.gadget.settings import DEFAULT_GADGETRON_PORT, DEFAULT_MRD_PORT, GadgetSettings, PeerFiles
    from igrog_gadget.limits import ResourceLimits

    if args.data_dir is not None and not os.path.isdir(args.data_dir):
        raise ConfigError(f"--data-dir {args.data_dir!r} is not a directory")
    for name, value in (("--max-file-mb", args.max_file_mb), ("--max-session-mb", args.max_session_mb),
                        ("--handshake-timeout", args.handshake_timeout), ("--message-deadline", args.message_deadline),
                        ("--min-message-rate", args.min_message_rate), ("--read-timeout", args.read_timeout)):
        if not value > 0:
            raise ConfigError(f"{name} must be > 0, got {value}")
    if args.max_session_mb < MIN_SESSION_MB:
        raise ConfigError(
            f"--max-session-mb must be at least {MIN_SESSION_MB:g} (a session's own threads and buffers need that "
            f"much), got {args.max_session_mb:g}"
        )
    resource_limits = ResourceLimits().with_overrides(**_parse_limits(args.limits))
    defaults = GadgetSettings(
        variant=args.variant,
        config_file=args.config,
        overrides=list(args.overrides),
        device=args.device,
        output=args.output,
        files=PeerFiles(args.data_dir, int(args.max_file_mb * (1 << 20))),
    )
    if args.cpu_threads < 0:
        raise ConfigError(f"--cpu-threads must be >= 0, got {args.cpu_threads}")
    if args.spare_workers < 1:
        raise ConfigError(f"--spare-workers must be >= 1, got {args.spare_workers}")
    if args.mrd and defaults.output == "recondata":
        raise ConfigError("--output recondata is for Gadgetron peers; MRD clients read images or acquisitions")
    resource_limits.check_config(defaults.igrog_config())  # the defaults are valid before anything starts
    port = args.port if args.port is not None else (DEFAULT_MRD_PORT if args.mrd else DEFAULT_GADGETRON_PORT)
    try:  # before torch loads: a port in use is reported at once
        listener = bind_listener(args.host, port, listen_backlog(args.max_connections))
    except OSError as error:  # port in use, address not on this machine, no permission
        raise ConfigError(f"cannot listen on {args.host or '*'}:{port}: {error.strerror or error}") from None
    try:
        return _serve_on(listener, args, defaults, resource_limits, port)
    finally:
        listener.close()


def _serve_on(listener: "socket.socket", args: argparse.Namespace, defaults: "GadgetSettings",
              resource_limits: "ResourceLimits", port: int) -> int:
    """``run_serve`` once its arguments are checked and its port is bound: with process isolation
    the worker pool starts first (its fork server loads torch and the product while this process
    loads its own modules)."""
    from igrog_gadget.environment import configure_process, set_thread_counts
    from igrog_gadget.errors import ConfigError
    from igrog_gadget.gadget.protocol import ProtocolLimits
    from igrog_gadget.gadget.server_options import ServerOptions, worker_spec
    from igrog_gadget.gadget.settings import Dialect
    from igrog_gadget.gadget.workers import WorkerPool

    configure_process()
    limits = ProtocolLimits(
        max_message_bytes=int(args.max_message_mb * (1 << 20)),
        idle_timeout_s=args.idle_timeout if args.idle_timeout and args.idle_timeout > 0 else None,
        read_timeout_s=args.read_timeout,
        message_deadline_s=args.message_deadline,
        min_message_rate=args.min_message_rate * 1e6,
    )
    options = ServerOptions(
        host=args.host,
        port=port,
        dialect=Dialect.MRD if args.mrd else Dialect.GADGETRON,
        max_connections=args.max_connections,
        handshake_timeout_s=args.handshake_timeout,
        max_buffered_bytes=int(args.max_session_mb * (1 << 20)),
        resource_limits=resource_limits,
        isolation=args.isolation,
        spare_workers=args.spare_workers,
        memory_limit_mb=args.max_session_mb if args.isolation == "process" else None,  # an OS limit only on workers
        cpu_threads=args.cpu_threads,
        log_level=logging.getLogger().getEffectiveLevel(),
    )
    pool = WorkerPool(worker_spec(options, defaults, limits), args.spare_workers) if args.isolation == "process" else None
    set_thread_counts(args.cpu_threads)
    from igrog_engine import resolve_device
    from igrog_gadget.gadget.server import GadgetServer

    try:
        device = resolve_device(defaults.igrog_config().gridding.device)
    except ValueError as error:
        if pool is not None:
            pool.close()
        raise ConfigError(f"--device / gridding.device: {error}") from None
    logger.info("default device: %s", device)
    if pool is None:  # sessions in this process: torch and the variants load now, not on the first scan
        from igrog_gadget.core.training import load_training_modules

        load_training_modules()
    if args.host in ("", "0.0.0.0", "::"):
        logger.warning(
            "listening on every interface (--host %s): any peer that reaches this port may connect; "
            "there is no authentication (docs/gadget.md, threat model)", args.host or "''",
        )
    server = GadgetServer(options, defaults, limits, listener=listener, pool=pool)

    def stop(signum: int, _frame: object) -> None:
        logger.info("signal %d: shutting down", signum)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if server.pool is not None and not server.pool.wait_ready():
        logger.warning("the worker processes are not ready yet; the first connections wait for them")
    print(f"listening on port {server.port}", flush=True)
    server.serve_forever()
    server.shutdown()
    return 0
