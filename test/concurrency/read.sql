-- readers: a merge by hand and an export while the catalog changes
SELECT count(*) FROM (SELECT tensor, chunk, soup.avg_weights(data) FROM soup.weights
					  WHERE model IN ('src-1', 'src-2') GROUP BY tensor, chunk) s;
SELECT length(soup.safetensors('src-3'));
