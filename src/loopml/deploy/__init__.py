"""Deployments: named endpoints, their routing, rollouts and the statistics that judge them."""
