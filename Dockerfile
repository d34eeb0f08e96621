# The promise-tracker image: the worker, the sink and the CLI (docker-compose.yml runs them).
FROM python:3.11.7-slim-bookworm
WORKDIR /app
COPY pyproject.toml README.md requirements.lock ./
COPY promise_tracker ./promise_tracker
COPY deploy/clickhouse ./deploy/clickhouse
COPY examples ./examples
# the locked versions, as ./dev installs them; editable: `migrate` reads the DDL from
# deploy/clickhouse/ beside the package
RUN pip install --no-cache-dir --require-hashes -r requirements.lock \
    && pip install --no-cache-dir --no-deps --no-build-isolation -e . \
    && useradd --create-home promise
USER promise
ENTRYPOINT ["promise-tracker"]
