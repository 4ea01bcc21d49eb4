-- squawk docs "require-concurrent-reindex" ("Use"):
-- avoids blocking reads and writes
REINDEX TABLE CONCURRENTLY foo;
REINDEX INDEX CONCURRENTLY foo_idx;
