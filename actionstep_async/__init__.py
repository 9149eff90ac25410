"""Async client for the Actionstep API (placeholder; curated exports are filled in below)."""
