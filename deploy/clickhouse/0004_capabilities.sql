-- Declared capabilities (issue 16): a violation names the contradiction warning that
-- predicted it; a contradiction warning carries the promise's and the capability's words.
-- Old rows read as NULL.
ALTER TABLE {db}.violations ADD COLUMN IF NOT EXISTS predicted_by Nullable(String) AFTER version;
ALTER TABLE {db}.warnings ADD COLUMN IF NOT EXISTS detail Nullable(String) AFTER version;
