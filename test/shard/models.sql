-- test/shard/models.sql - the test models of test/shard_test.sh, written on
-- the coordinator by hand (as sql/catalog.sql does): a base, three
-- fine-tunes and a diagonal Fisher per fine-tune, each with five tensors in
-- f32, bf16, f16 and f64, stored in chunks of 16 elements (55 chunks per
-- model), so that every tensor spans both shards.
SET search_path = pg_catalog;

INSERT INTO soup.models (name, kind, run, step)
SELECT name, kind, run, step
FROM (VALUES ('base', 'checkpoint', 'pre', 0),
             ('ft-1', 'checkpoint', 'ft', 100),
             ('ft-2', 'checkpoint', 'ft', 200),
             ('ft-3', 'checkpoint', 'ft', 300),
             ('fisher-1', 'fisher', NULL, NULL),
             ('fisher-2', 'fisher', NULL, NULL),
             ('fisher-3', 'fisher', NULL, NULL)) v(name, kind, run, step)
ORDER BY name;   -- ids: base 1, fisher-1..3 2..4, ft-1..3 5..7

INSERT INTO soup.tensors (model_id, name, ordinal, dtype, shape, numel, chunk_elems)
SELECT m.id, t.name, t.ordinal, t.dtype, t.shape, t.numel, 16
FROM soup.models m
CROSS JOIN (VALUES ('embed.weight', 0, 'f32', '{50,8}'::bigint[], 400),
                   ('layers.0.attn.w', 1, 'bf16', '{24,10}', 240),
                   ('layers.0.attn.b', 2, 'f16', '{77}', 77),
                   ('layers.0.norm', 3, 'f64', '{50}', 50),
                   ('head.weight', 4, 'f32', '{13,7}', 91)) t(name, ordinal, dtype, shape, numel);

-- value of element i of tensor number o: the base is a smooth pattern, a
-- fine-tune k adds a task vector with a part shared by all fine-tunes and a
-- part of its own, a Fisher is positive (with some entries under the floor).
INSERT INTO soup.chunks (model_id, tensor, chunk, data)
SELECT t.model_id, t.name, g,
       soup.tensor(ARRAY(
           SELECT CASE
                  WHEN m.kind = 'fisher' THEN
                      CASE WHEN i % 11 = 0 THEN 1e-9
                           ELSE abs(sin(i * 0.37 + t.ordinal + m.id)) * (1 + m.id) END
                  ELSE sin(i * 0.731 + t.ordinal * 1.3) / (1 + t.ordinal)
                       + CASE WHEN m.step > 0 THEN
                             0.05 * cos(i * 0.11 + t.ordinal)
                             + 0.03 * sin(i * (0.5 + m.step / 1000.0) + m.step)
                         ELSE 0 END
                  END
           FROM generate_series(g::bigint * t.chunk_elems,
                                least(t.numel, (g + 1)::bigint * t.chunk_elems) - 1) i
           ORDER BY i)::float8[], t.dtype)
FROM soup.tensors t
JOIN soup.models m ON m.id = t.model_id
CROSS JOIN LATERAL generate_series(0, t.n_chunks - 1) g;
