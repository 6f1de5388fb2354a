"""Continuous training: policies, their triggers, and the controller that closes the loop."""
