-- squawk docs "prefer-repack", "problem":
-- blocks reads and writes
vacuum full t;

-- blocks reads and writes
cluster t using t_pkey;
