"""Processes of the tests (Linux /proc), shared by the app and gadget tests."""

from __future__ import annotations

from pathlib import Path


def descendants(pid: int) -> list[int]:
    """Every descendant of ``pid`` (a server's worker processes and their fork server, a batch's
    cluster workers and their replay children): only this process's tree is looked at."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        children = []
        for task in Path(f"/proc/{parent}/task").glob("*"):  # a child belongs to the thread that made it
            try:
                children += [int(c) for c in (task / "children").read_text().split()]
            except OSError:  # ended meanwhile
                continue
        found += children
        todo += children
    return found
