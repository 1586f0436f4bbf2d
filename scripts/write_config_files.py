"""Write (or check) the files generated from the configuration table
(``igrog_gadget/config/schema.py``): each variant's standard file
``igrog_gadget/config/<variant>.toml`` and the reference ``docs/configuration.md``.

    python scripts/write_config_files.py            # check: exit 1 when a file differs
    python scripts/write_config_files.py --write    # rewrite the files that differ

A standard file keeps its hand-written header comment and its list of keys (the fields the
variant uses); its values and comments come from the table and the variant's own defaults
(``VARIANT_DEFAULTS``). Run it after changing a field's default, bounds or documentation.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's package, whatever is installed

from igrog_gadget.config import VARIANTS, standard_config_path, standard_layout  # noqa: E402
from igrog_gadget.config.render import render_reference, render_standard_file  # noqa: E402
from igrog_gadget.limits import ResourceLimits  # noqa: E402

REFERENCE = ROOT / "docs" / "configuration.md"


def generated_files() -> dict[Path, str]:
    """Path -> the text it should hold."""
    texts = {standard_config_path(variant): render_standard_file(variant) for variant in VARIANTS}
    texts[REFERENCE] = render_reference(dataclasses.asdict(ResourceLimits()))
    return texts


def stale_files(texts: dict[Path, str]) -> list[Path]:
    """The files whose text differs from ``texts`` (or that do not exist)."""
    return [path for path, text in texts.items() if not path.exists() or path.read_text() != text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="rewrite the files that differ")
    args = parser.parse_args(argv)
    texts = generated_files()
    stale = stale_files(texts)
    for path in stale:
        name = path.relative_to(ROOT)
        if args.write:
            path.write_text(texts[path])
            print(f"rewrote {name}")
        else:
            print(f"{name} differs from its regeneration: run python scripts/write_config_files.py --write", file=sys.stderr)
    standard_layout.cache_clear()
    return 1 if stale and not args.write else 0


if __name__ == "__main__":
    sys.exit(main())
