"""Gridding plans per trajectory, kept for later frames, bounded in bytes (see ``PlanCache`` for what is evicted)."""

from __future__ import annotations

from collections import OrderedDict

from igrog_gadget.core.plan import GriddingPlan


class PlanCache:
    """Reusable gridding plans, keyed by (calibration key, model version, kernel fingerprint).

    ``max_bytes`` bounds the kernels held (a plan whose kernels are larger than that is never
    kept: its frames get streamed plans, kernels recomputed chunk by chunk). Eviction: a new trajectory of a
    calibration key replaces that key's older sets (least recently used first); a set of a
    key with nothing to replace is kept only if it fits beside the others. So a multi-slice
    series cycling through more slices than fit keeps the first ones instead of evicting each
    set just before it is needed again (what LRU does to a cyclic order), and a
    rotating trajectory of one slice keeps its latest set.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = int(max_bytes)
        self._entries: OrderedDict[tuple, tuple[GriddingPlan, int]] = OrderedDict()

    @property
    def nbytes(self) -> int:
        """Bytes of kernels held now."""
        return sum(size for _, size in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def admits(self, nbytes: int, key: tuple | None = None) -> bool:
        """Whether a plan with ``nbytes`` of kernels for ``key`` would be kept (``put`` would keep it)."""
        if not 0 < nbytes <= self.max_bytes:
            return False
        if key is None:
            return True
        freeable = sum(size for k, (_, size) in self._entries.items() if k[0] == key[0])
        return self.nbytes - freeable + nbytes <= self.max_bytes

    def get(self, key: tuple) -> GriddingPlan | None:
        """The plan of ``key`` (marked as recently used), or None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: tuple, plan: GriddingPlan) -> None:
        """Keep a reusable ``plan``, evicting the oldest entries to fit."""
        size = plan.kernels.nbytes
        if not plan.reusable or not self.admits(size, key):
            return
        self._entries.pop(key, None)
        for old in [k for k in self._entries if k[0] == key[0]]:  # oldest first
            if self.nbytes + size <= self.max_bytes:
                break
            del self._entries[old]
        self._entries[key] = (plan, size)


def kernel_bytes(num_samples: int, coils: int, num_sources: int) -> int:
    """Bytes of complex64 kernels (num_samples, coils, coils * num_sources)."""
    return int(num_samples) * coils * coils * num_sources * 8
