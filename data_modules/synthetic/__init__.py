"""Synthetic pedestrians written in real PAR distribution formats (for tests, demos and quickstarts)."""

from __future__ import annotations

from data_modules.synthetic.labels import sample_pa100k_labels
from data_modules.synthetic.lists import write_label_list
from data_modules.synthetic.pa100k import synthesize_pa100k
from data_modules.synthetic.peta import synthesize_peta
from data_modules.synthetic.rap import synthesize_rap
from data_modules.synthetic.render import render_pedestrian
from data_modules.synthetic.vocab import (
    peta_labels_from_pa100k,
    rap1_labels_from_pa100k,
    rap2_labels_from_pa100k,
)

__all__ = [
    "peta_labels_from_pa100k",
    "rap1_labels_from_pa100k",
    "rap2_labels_from_pa100k",
    "render_pedestrian",
    "sample_pa100k_labels",
    "synthesize_pa100k",
    "synthesize_peta",
    "synthesize_rap",
    "write_label_list",
]
