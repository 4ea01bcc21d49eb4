-- squawk docs "require-concurrent-reindex" ("Instead of"):
-- blocks reads and writes
REINDEX TABLE foo;
REINDEX INDEX foo_idx;
