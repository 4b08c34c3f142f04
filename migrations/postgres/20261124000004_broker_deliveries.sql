-- Deliveries a broker bus (RabbitMQ) carries: stored for the API, attempts and dead letters,
-- but never leased from the store's own queue. A new column rather than a marker in
-- `next_at` or `lease_owner`, because retries, replays and releases rewrite those two.
ALTER TABLE deliveries ADD COLUMN on_broker BOOLEAN NOT NULL DEFAULT FALSE;

-- The store's queue is what the poller leases and the queue-depth gauge counts: the index
-- covers exactly those rows, so neither reads a broker's deliveries.
DROP INDEX deliveries_due;
CREATE INDEX deliveries_due ON deliveries (channel, next_at) WHERE state = 'pending' AND NOT on_broker;
