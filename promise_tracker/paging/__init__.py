"""Paging: active violations become Alertmanager alerts (the worker hands them over)."""
