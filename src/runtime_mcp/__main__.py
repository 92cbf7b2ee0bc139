"""``python -m runtime_mcp``: the same as the ``runtime-mcp`` command."""

from __future__ import annotations

import sys

from runtime_mcp.cli import main

sys.exit(main())
