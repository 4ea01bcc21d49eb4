-- squawk docs "prefer-repack", "solution" (REPACK is PostgreSQL 19 syntax):
-- repack without ordering (equivalent to vacuum full)
repack (concurrently) t;

-- repack with ordering (equivalent to cluster)
repack (concurrently) t using index t_pkey;
