# The promise-tracker image: the worker, the sink and the CLI (docker-compose.yml runs them).
FROM python:3.11.7-slim-bookworm
WORKDIR /app
COPY pyproject.toml README.md ./
COPY promise_tracker ./promise_tracker
COPY schemas ./schemas
COPY streams ./streams
COPY sinks ./sinks
COPY deploy/clickhouse ./deploy/clickhouse
COPY examples ./examples
# editable: `migrate` reads the DDL from deploy/clickhouse/ beside the package
RUN pip install --no-cache-dir -e . && useradd --create-home promise
USER promise
ENTRYPOINT ["promise-tracker"]
