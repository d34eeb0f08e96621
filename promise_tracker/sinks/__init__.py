"""The ClickHouse store: row types, the batching sink, migrations, and reading rows back."""
