"""Lightning callbacks of par-lightning."""

from callbacks.attribute_boxes import AttributeBoxes
from callbacks.gradient_compression import GradientRankCompression
from callbacks.prediction_writer import PredictionWriter
from callbacks.test_summary import TestSummary, summary_table

__all__ = ["AttributeBoxes", "GradientRankCompression", "PredictionWriter", "TestSummary", "summary_table"]
