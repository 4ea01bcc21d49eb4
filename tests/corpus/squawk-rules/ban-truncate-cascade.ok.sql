-- squawk docs "ban-truncate-cascade", "solution":
truncate a, b;
