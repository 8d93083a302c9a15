-- test/shard/shard.sql - run on each shard: pg_soup (the merge aggregates
-- run here) and a plain table for this shard's chunks, with the columns of
-- soup.chunks.  No catalog rows live on a shard.
CREATE EXTENSION pg_soup;
CREATE SCHEMA shard;
CREATE TABLE shard.chunks (
	model_id	bigint NOT NULL,
	tensor		text NOT NULL,
	chunk		int NOT NULL CHECK (chunk >= 0),
	data		soup.tensor NOT NULL,
	PRIMARY KEY (model_id, tensor, chunk)
);
ALTER TABLE shard.chunks ALTER COLUMN data SET STORAGE EXTERNAL;
