-- At-risk warnings (SPEC 4.1): the latest emission per warning id, as for violations.
-- state: active (about to break), resolved (decided; outcome says how), retracted.
CREATE TABLE IF NOT EXISTS {db}.warnings
(
    warning_id    String,
    promise_id    String,
    service       LowCardinality(String),
    channel       LowCardinality(String),
    subject       Nullable(String),
    kind          LowCardinality(String),
    label         LowCardinality(String),
    warn_at       DateTime64(6, 'UTC'),
    due_at        Nullable(DateTime64(6, 'UTC')),
    time_left     Nullable(Float64),
    promise_text  Nullable(String),
    labels        Map(LowCardinality(String), String),
    state         LowCardinality(String),
    outcome       LowCardinality(Nullable(String)),
    detected_at   DateTime64(6, 'UTC'),
    event_id      String,
    version       UInt64,
    stored_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (service, warning_id);
