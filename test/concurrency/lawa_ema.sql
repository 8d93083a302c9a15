-- the scheduled jobs, run by several clients at once on the same targets
CALL soup.refresh_ema('src', 'cc-ema', 0.9);
CALL soup.refresh_lawa('src', 'cc-lawa', 2);
