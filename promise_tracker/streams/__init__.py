"""The pure engine (state, rules, watermark), the offline replay, and the live worker."""
