-- squawk docs "ban-truncate-cascade", "problem":
truncate a cascade;
