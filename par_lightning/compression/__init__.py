"""Low-rank compression maths as pure PyTorch: factorized layers, CPD-EPC, gradient-alignment ranks.

Nothing in this package imports Lightning (a test enforces it); ``callbacks/`` orchestrates it.
"""
