"""Synthetic pedestrians written in real PAR distribution formats (for tests, demos and quickstarts)."""

from __future__ import annotations

from data_modules.synthetic.labels import sample_pa100k_labels
from data_modules.synthetic.pa100k import synthesize_pa100k
from data_modules.synthetic.render import render_pedestrian

__all__ = ["render_pedestrian", "sample_pa100k_labels", "synthesize_pa100k"]
