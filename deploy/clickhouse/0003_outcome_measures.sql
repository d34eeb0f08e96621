-- What "can we keep this?" (docs/check.md) reads from the history: each outcome's terms and
-- the value its verdict was decided on. Nullable, so the rows written before stay readable
-- (NULL: not recorded). Appended after the existing columns, as the row type lists them.
-- terms:    the promise's terms as JSON, as written (times as RFC 3339 text)
-- measure:  early_seconds, hold_seconds, steps_to_goal, delivery_seconds or up_seconds
-- allowed:  what the terms allowed, in the measure's unit
-- measured: the measured value (NULL: never delivered, goal never reached, no outage seen)
ALTER TABLE {db}.outcomes ADD COLUMN IF NOT EXISTS terms Nullable(String);
ALTER TABLE {db}.outcomes ADD COLUMN IF NOT EXISTS measure LowCardinality(Nullable(String));
ALTER TABLE {db}.outcomes ADD COLUMN IF NOT EXISTS allowed Nullable(Float64);
ALTER TABLE {db}.outcomes ADD COLUMN IF NOT EXISTS measured Nullable(Float64);
