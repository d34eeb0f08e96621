-- promise-tracker's tables (SPEC section 4 and the dashboards' needs).
--
-- Every table is a ReplacingMergeTree keyed by its id, with `version` taken from where the
-- row came from (the Kafka offset of the output record, or the emission's sequence number in
-- a replay): a re-delivered batch writes rows that replace themselves, and the latest
-- emission of an id wins. Read with FINAL (or argMax(..., version)).
-- Columns that never change for an id (service, kind, channel, issued_at) may be in the
-- ORDER BY and PARTITION BY; the rest must not, or a changed row would not replace the old.
-- `{db}` is the database name, checked to be a plain identifier before it is substituted.

CREATE TABLE IF NOT EXISTS {db}.promises
(
    promise_id  String,
    service     LowCardinality(String),
    channel     LowCardinality(String),
    kind        LowCardinality(String),
    subject     Nullable(String),
    issued_at   DateTime64(6, 'UTC'),
    text        Nullable(String),
    labels      Map(LowCardinality(String), String),
    severity    String ALIAS if(labels['severity'] = '', 'ticket', labels['severity']),
    version     UInt64,
    stored_at   DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(issued_at)
ORDER BY (service, kind, channel, promise_id);

CREATE TABLE IF NOT EXISTS {db}.outcomes
(
    promise_id  String,
    status      LowCardinality(String),
    closed_at   Nullable(DateTime64(6, 'UTC')),
    service     LowCardinality(String),
    channel     LowCardinality(String),
    kind        LowCardinality(String),
    issued_at   DateTime64(6, 'UTC'),
    updated_at  DateTime64(6, 'UTC'),
    version     UInt64,
    stored_at   DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(issued_at)
ORDER BY (service, kind, channel, promise_id);

CREATE TABLE IF NOT EXISTS {db}.violations
(
    violation_id    String,
    promise_id      String,
    service         LowCardinality(String),
    channel         LowCardinality(String),
    subject         Nullable(String),
    kind            LowCardinality(String),
    reason          LowCardinality(String),
    expected        String,
    observed        String,
    excess          Nullable(Float64),
    unit            LowCardinality(Nullable(String)),
    occurred_at     DateTime64(6, 'UTC'),
    detected_at     DateTime64(6, 'UTC'),
    observation_id  Nullable(String),
    observed_by     Nullable(String),
    promise_text    Nullable(String),
    labels          Map(LowCardinality(String), String),
    state           LowCardinality(String),
    severity        String ALIAS if(labels['severity'] = '', 'ticket', labels['severity']),
    event_id        String,
    version         UInt64,
    stored_at       DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (service, violation_id);

-- Every distinct emission of every violation (a retraction, a changed reason, ...): the
-- history behind `violations`, and the first detection time for the detection-latency panel.
CREATE TABLE IF NOT EXISTS {db}.violation_events
(
    violation_id  String,
    event_id      String,
    promise_id    String,
    service       LowCardinality(String),
    reason        LowCardinality(String),
    state         LowCardinality(String),
    occurred_at   DateTime64(6, 'UTC'),
    detected_at   DateTime64(6, 'UTC'),
    version       UInt64,
    stored_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (violation_id, event_id);

-- Rejected input (the dead-letter topic, or a replay's rejects). The id is where the input
-- came from (topic, partition, offset or file, line), so a reject said twice after a crash
-- is stored once.
CREATE TABLE IF NOT EXISTS {db}.rejects
(
    reject_id      String,
    reason         LowCardinality(String),
    message        String,
    event_id       Nullable(String),
    origin         LowCardinality(String),  -- the input topic, or the replayed file
    origin_part    Nullable(Int32),         -- its partition (null for a file)
    origin_offset  Nullable(Int64),         -- the offset, or the file's line number
    raw            String,
    raw_base64     Nullable(String),
    rejected_at    DateTime64(3, 'UTC'),
    version        UInt64,
    stored_at      DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(version)
ORDER BY reject_id;

-- The keep-rate rollup by hour of decision, service, channel and kind. A view over the
-- deduplicated outcomes rather than a materialized view: a materialized view sees every
-- re-delivered or superseded row and would count a promise more than once.
CREATE VIEW IF NOT EXISTS {db}.keep_rate_hourly AS
SELECT
    toStartOfHour(assumeNotNull(closed_at)) AS hour,
    service,
    channel,
    kind,
    countIf(status = 'kept') AS kept,
    countIf(status = 'broken') AS broken,
    countIf(status = 'expired') AS unverifiable,
    countIf(status = 'cancelled') AS cancelled,
    if(kept + broken = 0, NULL, kept / (kept + broken)) AS keep_rate
FROM {db}.outcomes FINAL
WHERE status != 'open'
GROUP BY hour, service, channel, kind;
