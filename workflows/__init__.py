"""Temporal workflows: orchestration only (timers, updates, the order of appends)."""
