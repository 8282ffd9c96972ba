"""The decision outbox: rows committed with ``event_published_at`` unset are published
to the decision topic after the commit, then marked. Delivery is at least once;
consumers de-duplicate on ``decision_id``."""
