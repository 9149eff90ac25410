"""``python -m benchmarks``: every scenario, then RESULTS.md and the charts."""

from __future__ import annotations

import sys

from .run import main

sys.exit(main())
