"""Figures (matplotlib/seaborn), PNG + SVG: metrics against sparsity, criteria, effects, experiments."""
