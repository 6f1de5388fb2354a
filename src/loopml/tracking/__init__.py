"""Experiment tracking: experiments, runs, metrics, artifacts, search, autolog."""
