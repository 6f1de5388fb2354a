"""Serving: the inference server, its protocols and micro-batching."""
