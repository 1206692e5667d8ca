"""Alertmanager webhook receiver that acts on abusive containers."""
