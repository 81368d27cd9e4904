-- Run counts per flow and status over a time range (`run_counts`) read this index alone: the
-- range on created_at picks the entries, which carry flow and status, so no run row is read.
CREATE INDEX runs_created_flow_status ON runs (created_at, flow, status);
