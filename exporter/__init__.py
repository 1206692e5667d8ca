"""Prometheus exporter for per-container CPU, memory and PID metrics."""
