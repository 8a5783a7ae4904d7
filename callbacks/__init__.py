"""Lightning callbacks of par-lightning."""

from callbacks.test_summary import TestSummary, summary_table

__all__ = ["TestSummary", "summary_table"]
