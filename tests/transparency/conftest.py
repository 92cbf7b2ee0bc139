"""The transparency suite: third-party test suites run plainly and under the agent."""

from __future__ import annotations

#: Vendored third-party tests: run by runner.py in their own processes, never collected here.
collect_ignore_glob = ["more_itertools/*"]
