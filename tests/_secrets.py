"""Sentinel secrets: values that must never appear in any output."""

from __future__ import annotations

SENTINELS = (
    "sentinel-client-secret-5f2a9c",
    "sentinel-access-token-77b1e0",
    "sentinel-refresh-token-c4d8aa",
    "test-client-secret",
    "sentinel-hook-secret-0b7e41d2",
)
