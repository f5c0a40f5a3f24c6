"""Prometheus metrics of one server process, in a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
_DELIVERY_LABELS = ("tenant", "destination", "kind")
_ATTEMPT_LABELS = (*_DELIVERY_LABELS, "result")
_BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


class Metrics:
    """Every metric the server exports at /metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events_ingested = Counter(
            "auditkeep_events_ingested",
            "Events handled by ingest, by result (accepted, duplicate, rejected).",
            ["result"],
            registry=r,
        )
        self.http_requests = Counter(
            "auditkeep_http_requests",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self.http_latency = Histogram(
            "auditkeep_http_request_duration_seconds",
            "HTTP request latency by route template.",
            ["route", "method"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.writer_queue_depth = Gauge(
            "auditkeep_writer_queue_events",
            "Events waiting for the group-commit writer.",
            registry=r,
        )
        self.writer_batch_events = Histogram(
            "auditkeep_writer_batch_events",
            "Events per group commit (one transaction, one fsync).",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.writer_commit_seconds = Histogram(
            "auditkeep_writer_commit_seconds",
            "Time to write and sync one group commit.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.writer_failures = Counter(
            "auditkeep_writer_failures",
            "Group commits that failed and were rolled back.",
            registry=r,
        )
        self.auth_failures = Counter(
            "auditkeep_auth_failures",
            "Requests refused for a missing, unknown, expired or revoked key.",
            registry=r,
        )

        self.delivery_attempts = Counter(
            "auditkeep_delivery_attempts",
            "Batch delivery attempts by tenant, destination, kind and result.",
            _ATTEMPT_LABELS,
            registry=r,
        )
        self.delivery_events = Counter(
            "auditkeep_delivery_events",
            "Events delivered, by tenant, destination and kind.",
            _DELIVERY_LABELS,
            registry=r,
        )
        self.delivery_seconds = Histogram(
            "auditkeep_delivery_batch_seconds",
            "Time to send one batch to a receiver (successful or not), by kind.",
            ["kind"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.connections_refused = Counter(
            "auditkeep_connections_refused",
            "Connections closed by the server's guard, by reason: header_timeout, body_timeout, "
            "over_capacity (answered 503), dropped (closed unanswered, far past the cap).",
            ["reason"],
            registry=r,
        )
        self.feed_waiting = Gauge(
            "auditkeep_feed_long_polls",
            "GET /v1/feed requests waiting for new events.",
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def forget_destinations(self, live: set[str]) -> int:
        """Remove the delivery series of destinations not in ``live`` (deleted ones), so that
        a scrape shows only what exists. Returns how many series were removed."""
        removed = 0
        for counter, names in (
            (self.delivery_attempts, _ATTEMPT_LABELS),
            (self.delivery_events, _DELIVERY_LABELS),
        ):
            gone = {
                tuple(sample.labels[n] for n in names)
                for family in counter.collect()
                for sample in family.samples
                if sample.labels.get("destination") not in live
            }
            for values in gone:
                counter.remove(*values)
                removed += 1
        return removed
