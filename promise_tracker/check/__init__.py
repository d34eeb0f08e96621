"""Can we keep this? A planned promise checked against the history in ClickHouse
(docs/check.md): ``promise-tracker check``, ``promise-tracker serve`` and ``Emitter.check``."""
