"""The Grafana dashboards and alert rules as code, their queries, and the plugin's macros."""
