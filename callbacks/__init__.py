"""Lightning callbacks of par-lightning."""

from callbacks.attribute_boxes import AttributeBoxes
from callbacks.test_summary import TestSummary, summary_table

__all__ = ["AttributeBoxes", "TestSummary", "summary_table"]
