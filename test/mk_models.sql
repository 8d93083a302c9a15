-- Small llama-shaped models for the mergekit example configurations
-- (docs/examples): embeddings, 4 layers of self_attn.q_proj and
-- mlp.up_proj, norm, head and an integer buffer, in bf16 and 2 chunks a tensor.
CREATE FUNCTION pg_temp.mkmodel(model text, seed float8) RETURNS void LANGUAGE plpgsql AS $$
DECLARE id bigint; n text; o int := 0;
BEGIN
	INSERT INTO soup.models (name, run, step) VALUES (model, 'examples', 0) RETURNING soup.models.id INTO id;
	FOR n IN SELECT unnest(ARRAY['model.embed_tokens.weight'] ||
			ARRAY(SELECT format('model.layers.%s.%s', l, k) FROM generate_series(0, 3) l,
				  unnest(ARRAY['mlp.up_proj.weight', 'self_attn.q_proj.weight']) k ORDER BY l, k) ||
			ARRAY['model.norm.weight', 'lm_head.weight']) LOOP
		INSERT INTO soup.tensors (model_id, name, ordinal, dtype, shape, numel, chunk_elems)
		VALUES (id, n, o, 'bf16', '{4,4}', 16, 10);
		INSERT INTO soup.chunks
		SELECT id, n, c, soup.astype(('f32:[' || string_agg((sin(seed * 7 + o * 3 + i) * (1 + seed))::real::text, ',' ORDER BY i)
									 || ']')::soup.tensor, 'bf16')
		FROM generate_series(0, 15) i, LATERAL (SELECT i / 10 AS c) x GROUP BY c;
		o := o + 1;
	END LOOP;
	INSERT INTO soup.tensors (model_id, name, ordinal, dtype, shape, numel, chunk_elems)
	VALUES (id, 'model.position_ids', o, 'i64', '{4}', 4, 10);
	INSERT INTO soup.chunks VALUES (id, 'model.position_ids', 0, 'i64:[0,1,2,3]');
END $$;
SELECT pg_temp.mkmodel('llama-base', 0.1), pg_temp.mkmodel('llama-chat', 0.2),
	   pg_temp.mkmodel('llama-code', 0.3), pg_temp.mkmodel('llama-math', 0.45);
