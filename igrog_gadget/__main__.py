"""``python -m igrog_gadget`` = the ``igrog`` command."""

import sys

from igrog_gadget.cli import main

sys.exit(main())
