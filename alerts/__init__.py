"""The runtime policy and the Prometheus rules rendered from it."""
