"""``python -m igrog_gadget.simulate OUTPUT.h5 ...`` (same options as ``igrog simulate``)."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
