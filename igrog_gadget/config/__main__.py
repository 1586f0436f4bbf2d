"""``python -m igrog_gadget.config [--write]``: check (or regenerate) the standard files.

Each ``igrog_gadget/config/<variant>.toml`` keeps its header comment and its list of keys (the
fields the variant uses); values and comments come from the dataclasses. Exit status 1 when a
file differs from its regeneration (without ``--write``).
"""

from __future__ import annotations

import argparse
import sys

from igrog_gadget.config import check_standard_files, write_standard_files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m igrog_gadget.config", description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite the standard files that differ")
    args = parser.parse_args(argv)
    if args.write:
        for name in write_standard_files():
            print(f"rewrote {name}")
        return 0
    stale = check_standard_files()
    for name in stale:
        print(f"{name} differs from its regeneration: run python -m igrog_gadget.config --write", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
