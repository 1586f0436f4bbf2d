"""Printing the benchmarks' result tables."""

from __future__ import annotations

from typing import Sequence


def print_rows(rows: Sequence[dict], separator: str = "  ", skip: Sequence[str] = ()) -> None:
    """Print dicts as a table: one column per key of the first row (except ``skip``), left-aligned."""
    if not rows:
        return
    columns = [c for c in rows[0] if c not in skip]
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    print(separator.join(c.ljust(widths[c]) for c in columns).rstrip())
    for row in rows:
        print(separator.join(str(row[c]).ljust(widths[c]) for c in columns).rstrip())
