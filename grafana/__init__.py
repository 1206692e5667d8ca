"""Grafana dashboard of Warden and the generator that writes its JSON."""
