"""Tests of the Grafana dashboard and its provisioning files."""
