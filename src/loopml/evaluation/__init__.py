"""Evaluation: metrics, slices, fairness, importance, gates and promotion past them."""
