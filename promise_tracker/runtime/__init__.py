"""What every long-running process shares: settings, Kafka clients and topics, start-up,
metrics exposition, retry backoff. Knows nothing of the engine, the store or paging."""
