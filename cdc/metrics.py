"""Prometheus metrics of the daemon, on a registry of their own (served at `/metrics`).

The capture side (`events_captured`, `capture_lag_seconds`, `batch_commit_seconds`) is
updated by the daemon and the store; the stream side by the hub and the server.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

events_captured = Counter(
    "cdc_events_captured",
    "Row changes written to the event table.",
    ["schema", "table", "type"],
    registry=REGISTRY,
)
capture_lag_seconds = Gauge(
    "cdc_capture_lag_seconds",
    "Seconds between a source commit and its events being committed to the event table.",
    registry=REGISTRY,
)
batch_commit_seconds = Histogram(
    "cdc_batch_commit_seconds",
    "Time to write one batch of events and the checkpoint, and commit.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
hub_last_event_id = Gauge(
    "cdc_hub_last_event_id",
    "Id of the newest event handed to the stream clients.",
    registry=REGISTRY,
)
stream_clients = Gauge(
    "cdc_stream_clients",
    "Clients connected to /stream.",
    registry=REGISTRY,
)
stream_clients_dropped = Counter(
    "cdc_stream_clients_dropped",
    "Stream clients disconnected because they fell too far behind (they resume).",
    registry=REGISTRY,
)
stream_clients_rejected = Counter(
    "cdc_stream_clients_rejected",
    "Stream connections refused with 503 because the maximum number of clients was reached.",
    registry=REGISTRY,
)
history_query_seconds = Histogram(
    "cdc_history_query_seconds",
    "Time to answer one GET /events from the event table.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
bus_events_published = Counter(
    "cdc_bus_events_published",
    "Events added to the Redis stream.",
    registry=REGISTRY,
)
bus_events_skipped = Counter(
    "cdc_bus_events_skipped",
    "Committed events not added to the Redis stream (Redis slow or down, queue full); "
    "readers fill them from the event table.",
    registry=REGISTRY,
)
