-- squawk docs "require-concurrent-partition-detach" ("Instead of"):
-- blocks reads and writes
ALTER TABLE t DETACH PARTITION p;
