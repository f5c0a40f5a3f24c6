"""Observability: Prometheus metrics (and, later, alert rules and usage insights)."""
