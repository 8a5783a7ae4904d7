"""Pieces of the compression quality benchmark (``benchmarks/compression_quality.py``).

One concept per module: the YAML settings, data and evaluation, budget matching, the rank policies,
compress-and-fine-tune, and the report (tables, goals, plot).
"""
