-- squawk docs "require-concurrent-partition-detach" ("Use"):
-- allows reads and writes while detaching
ALTER TABLE t DETACH PARTITION p CONCURRENTLY;
