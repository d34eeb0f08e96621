"""Serving a metrics registry over HTTP, for the worker and the sink alike."""

from __future__ import annotations

import errno
from typing import Any

from prometheus_client.exposition import start_http_server
from prometheus_client.registry import CollectorRegistry

from promise_tracker.errors import MetricsPortTaken
from promise_tracker.runtime.settings import PREFIX


def serve(registry: CollectorRegistry, host: str, port: int, setting: str) -> Any:
    """Serve ``registry`` on http://host:port/metrics in a daemon thread; None when the
    port is 0 (metrics off). A port in use stops the process with one line naming the
    setting: several workers on one host need a port each."""
    if port == 0:
        return None
    try:
        server, _ = start_http_server(port, host, registry=registry)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        raise MetricsPortTaken(
            f"{PREFIX}{setting.upper()}={port}: {host}:{port} is in use (another worker or "
            "sink on this host?): give each process its own port, or 0 to turn metrics off"
        ) from None
    return server
