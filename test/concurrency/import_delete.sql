-- import a checkpoint under this client's own name, then delete it
\set n random(1, 1000000)
SELECT soup.import_safetensors('/tmp/pg_soup_regress/gen/g1.safetensors', 'cc-' || :client_id || '-' || :n, 'cc-run', :n);
DELETE FROM soup.models WHERE name = 'cc-' || :client_id || '-' || :n;
