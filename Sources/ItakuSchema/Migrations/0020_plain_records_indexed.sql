-- Records stored before sealing existed are sealed by the retention run, which looks for them
-- every hour in every dataset. Without an index that search read every record's fields each
-- time; this partial index holds only the plain ones (none, once they are sealed), so the
-- search costs nothing when there is nothing to seal.
CREATE INDEX records_plain ON itaku.records (tenant_id, dataset_id) WHERE NOT (fields ? '$sealed');
