-- test/shard/coordinator.sql - run on the coordinator (psql variables
-- shard1_port and shard2_port): pg_soup for the catalog and the merges'
-- definitions, postgres_fdw, one server per shard that lists pg_soup in its
-- extensions option, and shard.chunks partitioned by hash of (tensor, chunk)
-- into one foreign table per shard.
CREATE EXTENSION pg_soup;
CREATE EXTENSION postgres_fdw;

-- extensions: pg_soup's functions, aggregates and type may be shipped.
-- fdw_tuple_cost: a row here is a whole chunk, so shipping rows is dear;
-- it also makes the planner prefer the pushed-down join of a base or Fisher.
-- async_capable: the coordinator waits on both shards at once.
CREATE SERVER shard1 FOREIGN DATA WRAPPER postgres_fdw
	OPTIONS (host '127.0.0.1', port :'shard1_port', dbname 'postgres',
			 extensions 'pg_soup', fdw_tuple_cost '1', async_capable 'true');
CREATE SERVER shard2 FOREIGN DATA WRAPPER postgres_fdw
	OPTIONS (host '127.0.0.1', port :'shard2_port', dbname 'postgres',
			 extensions 'pg_soup', fdw_tuple_cost '1', async_capable 'true');
CREATE USER MAPPING FOR postgres SERVER shard1 OPTIONS (user 'postgres');
CREATE USER MAPPING FOR postgres SERVER shard2 OPTIONS (user 'postgres');

CREATE SCHEMA shard;
CREATE TABLE shard.chunks (
	model_id	bigint NOT NULL,
	tensor		text NOT NULL,
	chunk		int NOT NULL,
	data		soup.tensor NOT NULL
) PARTITION BY HASH (tensor, chunk);
CREATE FOREIGN TABLE shard.chunks_1 PARTITION OF shard.chunks
	FOR VALUES WITH (MODULUS 2, REMAINDER 0)
	SERVER shard1 OPTIONS (schema_name 'shard', table_name 'chunks');
CREATE FOREIGN TABLE shard.chunks_2 PARTITION OF shard.chunks
	FOR VALUES WITH (MODULUS 2, REMAINDER 1)
	SERVER shard2 OPTIONS (schema_name 'shard', table_name 'chunks');

-- a group (tensor, chunk) lives on one shard, so each shard can run whole
-- groups; these let the planner aggregate (and join) partition by partition
ALTER DATABASE postgres SET enable_partitionwise_aggregate = on;
ALTER DATABASE postgres SET enable_partitionwise_join = on;
