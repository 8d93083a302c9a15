#!/bin/bash
# test/client_test.sh - the pg_soup command-line client against a running
# cluster, as a user who may only read and write the catalog tables (no
# server file access, not a superuser), over TCP with a conninfo string.
#
# Every shared fixture must round-trip bit for bit through import and
# export; the client must store exactly the rows soup.import_safetensors
# stores; merges and metrics must equal the server's own; bad input must
# exit with its documented code and leave nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
FIXTURES="${SOUP_FIXTURES:-$ROOT/../shared/fixtures/safetensors}"
PG_SOUP="${PG_SOUP:-$(pg_config --bindir)/pg_soup}"
WORK=$(mktemp -d /tmp/pg_soup_client.XXXXXX)
chmod 755 "$WORK"

source scripts/cluster.sh
trap 'cluster_stop; rm -rf "$WORK"' EXIT
cluster_start

q "CREATE EXTENSION pg_soup"
q "CREATE ROLE trainer LOGIN"
q "GRANT USAGE ON SCHEMA soup TO trainer"
q "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA soup TO trainer"
# the client speaks to the server only over libpq, as this user
CONN="host=127.0.0.1 port=$PGPORT dbname=postgres user=trainer"
soup() { "$PG_SOUP" -d "$CONN" "$@"; }

source test/check.sh
# exit code of a command, its output kept in $WORK/out
code() { set +e; "$@" >"$WORK/out" 2>&1; local rc=$?; set -e; echo "$rc"; }

# ---- found by name: make install links the client into a directory on the
# default PATH (Debian keeps pg_config --bindir off it)
check "pg_soup runs by name in a new login shell with a clean environment" \
	"$(env -i HOME=/tmp bash -lc 'pg_soup --version' 2>&1 | cut -d' ' -f1)" pg_soup
check "... and that is the installed client" \
	"$(env -i HOME=/tmp bash -lc 'readlink -f "$(command -v pg_soup)"')" "$(readlink -f "$PG_SOUP")"
make -s install-client DESTDIR="$WORK/destdir" >/dev/null
check "make install-client links it into CLIENT_LINK_DIR" \
	"$(readlink "$WORK/destdir/usr/local/bin/pg_soup")" "$(pg_config --bindir)/pg_soup"
make -s uninstall-client DESTDIR="$WORK/destdir" >/dev/null
check "make uninstall-client removes the program and the link" \
	"$(find "$WORK/destdir" -name pg_soup | wc -l)" 0

# ---- every fixture, bit for bit ----
singles=$(find "$FIXTURES" -name '*.safetensors' ! -path '*/sharded/*' | sort)
n=0
for f in $singles; do
	n=$((n + 1))
	for ce in default 7; do
		opt=(); [ "$ce" = 7 ] && opt=(--chunk-elems 7)
		soup -q import "$f" --model "fx$n-$ce" --run fixtures --step "$n" "${opt[@]}"
		soup -q export "fx$n-$ce" "$WORK/fx.safetensors"
		check "$(basename "$(dirname "$f")")/$(basename "$f") (chunks: $ce) round-trips bit for bit" \
			"$(cmp -s "$f" "$WORK/fx.safetensors" && echo same || echo differs)" same
	done
done
check "no temporary files left beside exports" "$(ls "$WORK" | grep -c pg_soup-tmp || true)" 0

# the rows are the server-side import's rows
q "SELECT soup.import_safetensors('$(echo "$singles" | tail -1)', 'server-side')" >/dev/null
last="fx$n-default"
check "same tensor rows as soup.import_safetensors" "$(q "
	SELECT count(*) FROM (
		SELECT name, ordinal, dtype, shape, numel, chunk_elems FROM soup.tensors
		WHERE model_id = (SELECT id FROM soup.models WHERE name = '$last')
		EXCEPT
		SELECT name, ordinal, dtype, shape, numel, chunk_elems FROM soup.tensors
		WHERE model_id = (SELECT id FROM soup.models WHERE name = 'server-side')) d")" 0
check "same chunk values as soup.import_safetensors" "$(q "
	SELECT count(*) FILTER (WHERE a.data IS NULL OR b.data IS NULL OR NOT a.data OPERATOR(soup.=) b.data) || '/' || count(*)
	FROM (SELECT * FROM soup.chunks WHERE model_id = (SELECT id FROM soup.models WHERE name = '$last')) a
	FULL JOIN (SELECT * FROM soup.chunks WHERE model_id = (SELECT id FROM soup.models WHERE name = 'server-side')) b
	USING (tensor, chunk)")" "0/$(q "SELECT count(*) FROM soup.chunks c JOIN soup.models m ON m.id = c.model_id WHERE m.name = 'server-side'")"
check "same header, metadata and run/step columns" "$(q "
	SELECT a.header = b.header AND a.metadata IS NOT DISTINCT FROM b.metadata
		   AND a.run = 'fixtures' AND a.step = $n AND a.source ->> 'client' = 'pg_soup'
	FROM soup.models a, soup.models b WHERE a.name = '$last' AND b.name = 'server-side'")" t

# a sharded checkpoint through its index: the same file the server exports
idx="$FIXTURES/fluxml-safetensors-jl/sharded/model.safetensors.index.json"
soup -q import "$idx" --model sharded-client
q "SELECT soup.import_safetensors('$idx', 'sharded-server')" >/dev/null
soup -q export sharded-client "$WORK/sharded-client.safetensors"
soup -q export sharded-server "$WORK/sharded-server.safetensors"
check "a sharded import exports the same file as the server-side import" \
	"$(cmp -s "$WORK/sharded-client.safetensors" "$WORK/sharded-server.safetensors" && echo same || echo differs)" same
check "the sharded export equals soup.safetensors() byte for byte" \
	"$(q "SELECT md5(soup.safetensors('sharded-server'))")" "$(md5sum <"$WORK/sharded-client.safetensors" | cut -d' ' -f1)"
check "sharded metadata and shard list recorded" \
	"$(q "SELECT a.metadata IS NOT DISTINCT FROM b.metadata AND a.source -> 'shards' = b.source -> 'shards'
		  FROM soup.models a, soup.models b WHERE a.name = 'sharded-client' AND b.name = 'sharded-server'")" t

# the server-side functions would have refused this user: the client needs no file access
check "soup.import_safetensors refuses the same user (42501)" \
	"$(psql -X -q -At -d "$CONN" -c "SELECT soup.import_safetensors('$idx', 'nope')" 2>&1 | grep -c 'permission denied' || true)" 1

# ---- a larger file: streaming, progress bar only on a terminal ----
/usr/bin/python3 - "$WORK/big.safetensors" <<'EOF'
import json, struct, sys
import numpy as np
rng = np.random.default_rng(7)
tensors = {"a.weight": rng.standard_normal((1024, 4096)).astype(np.float32),
           "b.bias": rng.standard_normal(4096).astype(np.float16),
           "c.empty": np.zeros((0, 3), dtype=np.float32),
           "d.weight": rng.standard_normal((2048, 1000)).astype(np.float64)}
hdr, off = {"__metadata__": {"format": "pt"}}, 0
for k, v in tensors.items():
    dt = {np.float32: "F32", np.float16: "F16", np.float64: "F64"}[v.dtype.type]
    hdr[k] = {"dtype": dt, "shape": list(v.shape), "data_offsets": [off, off + v.nbytes]}
    off += v.nbytes
h = json.dumps(hdr, separators=(",", ":")).encode()
h += b" " * (-len(h) % 8)
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h)
    for v in tensors.values():
        f.write(v.tobytes())
EOF
script -qefc "$PG_SOUP -d '$CONN' import $WORK/big.safetensors --model big" "$WORK/tty.log" >/dev/null </dev/null || cat "$WORK/tty.log"
# the closing line is drawn however fast the import was: bytes, rate (in
# whatever unit the machine's speed calls for) and the time taken
check "a progress bar on a terminal (bytes, rate, time)" \
	"$(grep -cE '100% [0-9.]+ [KMG]?i?B / [0-9.]+ [KMG]?i?B  [0-9.]+ [KMGT]?i?B/s  in [0-9]+:[0-9]{2}' \
		"$WORK/tty.log" | awk '{print ($1 > 0)}')" 1
soup export big "$WORK/big.out" >"$WORK/stdout" 2>"$WORK/stderr"
check "no progress output when piped" "$(wc -c <"$WORK/stderr")" 0
check "a 32 MiB file with f32/f16/f64 and an empty tensor round-trips" \
	"$(cmp -s "$WORK/big.safetensors" "$WORK/big.out" && echo same || echo differs)" same
check "the stored model passes soup.verify" "$(q "SELECT count(*) FROM soup.verify('big')")" 0

# ---- merges through soup.merge ----
p1=$(echo "$singles" | grep 'checkpoint-230/')
p2=$(echo "$singles" | grep 'checkpoint-2300/')
soup -q import "$p1" --model peft-230
soup -q import "$p2" --model peft-2300
soup -q merge avg --out avg-client --weights 1,3 peft-230 peft-2300
q "SELECT soup.merge('avg-server', 'avg', ARRAY['peft-230', 'peft-2300'], ARRAY[1, 3]::float8[])" >/dev/null
check "merge avg --weights equals soup.merge" \
	"$(q "SELECT md5(soup.safetensors('avg-client')) = md5(soup.safetensors('avg-server'))")" t
soup -q merge slerp --out slerp-client --param t=0.3 peft-230 peft-2300
q "SELECT soup.merge('slerp-server', 'slerp', ARRAY['peft-230', 'peft-2300'], params => '{\"t\": 0.3}')" >/dev/null
check "merge slerp --param t=0.3 equals soup.merge" \
	"$(q "SELECT md5(soup.safetensors('slerp-client')) = md5(soup.safetensors('slerp-server'))")" t
check "--param t=.5 is not a JSON number: sent as a string and refused (exit 1)" \
	"$(code soup -q merge slerp --out bad-merge --param t=.5 peft-230 peft-2300)" 1
check "the recipe records the merge" \
	"$(q "SELECT recipe ->> 'method' FROM soup.models WHERE name = 'slerp-client'")" slerp
check "a bad merge parameter: exit 1, no model" \
	"$(code soup -q merge slerp --out bad-merge --param t=2 peft-230 peft-2300)/$(q "SELECT count(*) FROM soup.models WHERE name = 'bad-merge'")" 1/0
check "ls lists the models of a run" "$(soup ls --run fixtures | tail -n +2 | wc -l)" $((2 * n))

# ---- metrics from a JSON-lines log ----
/usr/bin/python3 - "$WORK" <<'EOF'
import json, random, sys
random.seed(3)
rows, lines = {}, []
for step in range(0, 500, 10):
    rec = {"step": step, "tokens": step * 4096, "loss": random.uniform(2, 5),
           "lr": random.choice([6e-4, 3e-4, 1.5e-5]), "grad_norm": None if step % 50 else random.random() * 1e-3}
    lines.append(json.dumps(rec))
    for k, v in rec.items():
        if k not in ("step", "tokens") and v is not None:
            rows[(step, k)] = v
# step 100 logged again: the last line wins
rec = {"step": 100, "tokens": 409600, "loss": 1.25}
lines.append("  " + json.dumps(rec) + "  ")
lines.append("")
rows[(100, "loss")] = 1.25
open(sys.argv[1] + "/log.jsonl", "w").write("\n".join(lines) + "\n")
with open(sys.argv[1] + "/expected.txt", "w") as f:
    for (s, k), v in sorted(rows.items()):
        f.write(f"{s}|{k}|{float(v)!r}\n")
open(sys.argv[1] + "/bad.jsonl", "w").write('{"step": 1, "loss": 2}\n{"step": 2, "loss": "high"}\n')
open(sys.argv[1] + "/bad2.jsonl", "w").write('{"step": 1, "loss": 2}\n{"step": 3, "loss": 2,}\n')
EOF
soup -q log-metrics "$WORK/log.jsonl" --run client-run
q "SELECT step || '|' || name || '|' || value FROM soup.metrics WHERE run = 'client-run' ORDER BY step, name" \
	| /usr/bin/python3 -c "
import sys
for line in sys.stdin:
    s, k, v = line.rstrip('\n').split('|')
    print(f'{s}|{k}|{float(v)!r}')" >"$WORK/got.txt"
check "log-metrics stores every value exactly (python's float parse)" \
	"$(cmp -s "$WORK/expected.txt" "$WORK/got.txt" && echo same || echo differs)" same
check "tokens recorded" "$(q "SELECT tokens FROM soup.metrics WHERE run = 'client-run' AND step = 20 AND name = 'loss'")" 81920
soup -q log-metrics "$WORK/log.jsonl" --run client-run
check "logging the same file again changes nothing" \
	"$(q "SELECT count(*) FROM soup.metrics WHERE run = 'client-run'")" "$(wc -l <"$WORK/expected.txt")"
check "a string metric: exit 4 naming line 2, nothing stored" \
	"$(code soup log-metrics "$WORK/bad.jsonl" --run bad-run)/$(grep -c 'bad.jsonl:2: "loss" is not a number' "$WORK/out")/$(q "SELECT count(*) FROM soup.runs WHERE name = 'bad-run'")" 4/1/0
check "invalid JSON: exit 4 naming line 2" \
	"$(code soup log-metrics "$WORK/bad2.jsonl" --run bad-run)/$(grep -c 'bad2.jsonl:2: not valid JSON' "$WORK/out")" 4/1
printf '[1]\n' >"$WORK/arr.jsonl"
check "a line that is not an object: exit 4" \
	"$(code soup log-metrics "$WORK/arr.jsonl" --run bad-run)/$(grep -c 'arr.jsonl:1: not a JSON object' "$WORK/out")" 4/1
/usr/bin/python3 -c "print('{\"step\": 1, \"x\": ' + '[' * 100000 + ']' * 100000 + '}')" >"$WORK/deep.jsonl"
check "deep nesting is refused before the parser: exit 4" \
	"$(code soup log-metrics "$WORK/deep.jsonl" --run bad-run --skip-non-numeric)/$(grep -c 'nests JSON deeper' "$WORK/out")" 4/1
printf '{"step": 1, "loss": 1e-400}\n' >"$WORK/tiny.jsonl"
check "a value float8 cannot hold: exit 4" \
	"$(code soup log-metrics "$WORK/tiny.jsonl" --run bad-run)/$(grep -c 'out of range for float8' "$WORK/out")" 4/1
printf '{"step": 1, "lo\0ss": 2}\n' >"$WORK/nul.jsonl"
check "a NUL byte: exit 4" "$(code soup log-metrics "$WORK/nul.jsonl" --run bad-run)" 4
check "none of the bad logs created a run" "$(q "SELECT count(*) FROM soup.runs WHERE name = 'bad-run'")" 0
check "--skip-non-numeric skips the string" \
	"$(code soup -q log-metrics "$WORK/bad.jsonl" --run skip-run --skip-non-numeric)/$(q "SELECT count(*) FROM soup.metrics WHERE run = 'skip-run'")" 0/1

# ---- model folders: the weights and every file beside them ----
peft="$FIXTURES/peft-finegates-mrpc/checkpoint-230"
soup -q import "$peft" --model folder-peft
soup -q export folder-peft "$WORK/peft-out/"
check "a PEFT adapter folder comes back file for file, byte for byte" \
	"$(diff -r "$peft" "$WORK/peft-out" >/dev/null && echo same || echo differs)" same
check "its config is jsonb in soup.files" \
	"$(q "SELECT json ->> 'base_model_name_or_path' FROM soup.files WHERE model = 'folder-peft' AND name = 'adapter_config.json'")" roberta-base
# the Python package's import_directory stores the same rows
(cd /tmp && /usr/bin/python3 -c "import sys, psycopg2, pg_soup
pg_soup.import_directory(psycopg2.connect(sys.argv[1]), sys.argv[2], 'folder-peft-py')" "$CONN" "$peft")
check "the client and import_directory store the same folder" "$(q "
	SELECT (SELECT count(*) FROM soup.files a FULL JOIN (SELECT * FROM soup.files WHERE model = 'folder-peft-py') b
			USING (name) WHERE a.model = 'folder-peft' AND a.bytes IS NOT DISTINCT FROM b.bytes) || '/' ||
		   (SELECT count(*) FROM soup.weights a JOIN soup.weights b USING (tensor, chunk)
			WHERE a.model = 'folder-peft' AND b.model = 'folder-peft-py' AND soup.bytes(a.data) = soup.bytes(b.data))
		   || '/' || (SELECT count(*) FROM soup.weights WHERE model = 'folder-peft') || '/' ||
		   (SELECT (a.header = b.header AND a.source -> 'weights_file' = b.source -> 'weights_file')::text
			FROM soup.models a, soup.models b WHERE a.name = 'folder-peft' AND b.name = 'folder-peft-py')")" \
	"1/$(q "SELECT count(*) FROM soup.weights WHERE model = 'folder-peft'")/$(q "SELECT count(*) FROM soup.weights WHERE model = 'folder-peft'")/true"
# a sharded folder: one model.safetensors comes back, the other files as they were
mkdir "$WORK/shardfolder"
cp "$FIXTURES"/fluxml-safetensors-jl/sharded/* "$WORK/shardfolder/"
printf '{"architectures": ["Test"], "hidden_size": 8}\n' >"$WORK/shardfolder/config.json"
printf 'tokenizer \xff bytes\n' >"$WORK/shardfolder/tokenizer.model"
soup -q import "$WORK/shardfolder" --model folder-sharded
soup -q export folder-sharded "$WORK/shard-out"/
check "a sharded folder exports model.safetensors and its other files" \
	"$(ls "$WORK/shard-out" | tr '\n' ' ')" "config.json model.safetensors tokenizer.model "
check "... the weights equal the sharded import's export" \
	"$(cmp -s "$WORK/shard-out/model.safetensors" "$WORK/sharded-server.safetensors" && echo same || echo differs)" same
check "... the files byte for byte" \
	"$(cmp -s "$WORK/shard-out/tokenizer.model" "$WORK/shardfolder/tokenizer.model" && cmp -s "$WORK/shard-out/config.json" "$WORK/shardfolder/config.json" && echo same || echo differs)" same
# a merge takes its first model's files (no base here) and records it
soup -q merge avg --out folder-avg folder-peft folder-peft-py
soup -q export folder-avg "$WORK/avg-out/"
check "a merge's folder has its first model's files and weights name" \
	"$(ls "$WORK/avg-out" | tr '\n' ' ')/$(q "SELECT recipe ->> 'files_from' FROM soup.models WHERE name = 'folder-avg'")" \
	"adapter_config.json adapter_model.safetensors /folder-peft"
# refused: entries that are not regular files, files over the limit, no weights
mkdir -p "$WORK/subdir-folder/tokenizer" "$WORK/big-folder" "$WORK/empty-folder"
cp "$peft"/* "$WORK/subdir-folder/"
cp "$peft"/* "$WORK/big-folder/"
truncate -s $((64 * 1024 * 1024 + 1)) "$WORK/big-folder/huge.bin"
check "a folder with a subdirectory: exit 4" "$(code soup import "$WORK/subdir-folder" --model folder-bad)" 4
check "a file over 64 MiB: exit 4" "$(code soup import "$WORK/big-folder" --model folder-bad)" 4
check "a folder without weights: exit 4" "$(code soup import "$WORK/empty-folder" --model folder-bad)" 4
check "refused folders left no model" "$(q "SELECT count(*) FROM soup.models WHERE name = 'folder-bad'")" 0

# ---- mergekit configurations from YAML (docs/examples) ----
psql -X -q -v ON_ERROR_STOP=1 -f test/mk_models.sql >/dev/null
for f in docs/examples/*.yml; do
	m="ex-$(basename "$f" .yml)"
	check "docs/examples/$(basename "$f") runs: exit 0, a whole model" \
		"$(code soup merge --config "$f" --out "$m")/$(q "SELECT count(*) FROM soup.verify('$m')")/$(q "SELECT recipe -> 'config' ->> 'merge_method' = '$(grep '^merge_method:' "$f" | awk '{print $2}')' FROM soup.models WHERE name = '$m'")" 0/0/t
done
# the YAML reads as this JSON: the same merge bit for bit
q "SELECT soup.merge_config('ex-slerp-json', '{\"slices\": [{\"sources\": [{\"model\": \"llama-chat\", \"layer_range\": [0, 4]},
	{\"model\": \"llama-code\", \"layer_range\": [0, 4]}]}], \"merge_method\": \"slerp\", \"base_model\": \"llama-chat\",
	\"parameters\": {\"t\": [{\"filter\": \"self_attn\", \"value\": [0, 0.5, 0.3, 0.7, 1]}, {\"filter\": \"mlp\", \"value\": [1, 0.5, 0.7, 0.3, 0]},
	{\"value\": 0.5}]}, \"dtype\": \"bfloat16\"}')" >/dev/null
check "a YAML config and its JSON give the same bits" "$(q "
	SELECT count(*) FILTER (WHERE soup.bytes(a.data) <> soup.bytes(b.data)) || '/' || count(*)
	FROM soup.weights a JOIN soup.weights b USING (tensor, chunk)
	WHERE a.model = 'ex-gradient-slerp' AND b.model = 'ex-slerp-json'")" "0/$(q "SELECT count(*) FROM soup.weights WHERE model = 'ex-slerp-json'")"
check "the recipe keeps the config" \
	"$(q "SELECT recipe -> 'config' -> 'parameters' -> 't' -> 0 ->> 'filter' FROM soup.models WHERE name = 'ex-gradient-slerp'")" self_attn
printf 'merge_method: linear\nmodels:\n  - model: llama-chat\n    parameters: {weight: 1}\n  - model: llama-chat\n    parameters: [weight\n' >"$WORK/bad.yml"
check "invalid YAML: exit 4 naming the line" "$(code soup merge --config "$WORK/bad.yml" --out ex-bad)/$(grep -c 'bad.yml:[0-9]' "$WORK/out")" 4/1
printf 'merge_method: linear\nmerge_method: ties\n' >"$WORK/dup.yml"
check "a duplicate key: exit 4" "$(code soup merge --config "$WORK/dup.yml" --out ex-bad)/$(grep -c 'duplicate key' "$WORK/out")" 4/1
printf 'a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]\n' >"$WORK/laughs.yml"
check "an alias bomb: exit 4, refused by size" "$(code soup merge --config "$WORK/laughs.yml" --out ex-bad)/$(grep -c 'too large' "$WORK/out")" 4/1
printf 'merge_method: linear\nmodels:\n  - model: llama-chat\n    parameters: {weight: 1, density: 0.5}\n' >"$WORK/param.yml"
check "a config mistake: exit 1 naming its place" \
	"$(code soup merge --config "$WORK/param.yml" --out ex-bad)/$(grep -c 'models\[0\].parameters: unknown key "density"' "$WORK/out")" 1/1
check "--config with a METHOD: exit 2" "$(code soup merge --config "$WORK/param.yml" --out ex-bad avg llama-chat)" 2
check "no model from the failed configs" "$(q "SELECT count(*) FROM soup.models WHERE name = 'ex-bad'")" 0

# ---- the merge methods, from the server's catalog ----
soup methods >"$WORK/methods.txt"
check "pg_soup methods: one line a method of soup.merge_methods" \
	"$(($(wc -l <"$WORK/methods.txt") - 3))/$(grep -c '^della ' "$WORK/methods.txt")" "$(q "SELECT count(*) FROM soup.merge_methods")/1"
soup methods --markdown >"$WORK/methods.md"
sed -n '/<!-- methods:begin/,/<!-- methods:end/p' docs/merges.md | sed '1d;$d' >"$WORK/doc_methods.md"
check "docs/merges.md's method table is the catalog's (pg_soup methods --markdown)" \
	"$(diff "$WORK/methods.md" "$WORK/doc_methods.md" >/dev/null && echo current || diff "$WORK/methods.md" "$WORK/doc_methods.md" | head -4)" current
check "pg_soup methods della: its parameters, both faces" \
	"$(code soup methods della)/$(grep -c '^soup.merge  *epsilon' "$WORK/out")/$(grep -c '^merge_config  *epsilon  *number  *per model' "$WORK/out")" 0/1/1
check "pg_soup methods of an unknown method: exit 1" "$(code soup methods frobnicate)" 1
check "pg_soup merge della from the command line" \
	"$(code soup merge della --out cli-della --base llama-base --param density=0.5 --param seed=3 llama-chat llama-math)/$(q "SELECT count(*) FROM soup.verify('cli-della')")" 0/0

# ---- greedy soup: candidates by their metric, kept while the evaluation holds ----
q "UPDATE soup.models SET step = CASE name WHEN 'llama-chat' THEN 1 WHEN 'llama-code' THEN 2 ELSE 3 END
   WHERE name IN ('llama-chat', 'llama-code', 'llama-math')"
for s in 1:0.61 2:0.72 3:0.55; do q "SELECT soup.log_metrics('examples', ${s%%:*}, '{\"val_acc\": ${s##*:}}')" >/dev/null; done
# the evaluation: closeness to llama-chat (so adding llama-math makes it worse)
soup -q export llama-chat "$WORK/chat.safetensors"
evalcmd="/usr/bin/python3 $ROOT/test/greedy_eval.py {} $WORK/chat.safetensors"
check "greedy-soup runs: exit 0" \
	"$(code soup greedy-soup --metric val_acc --eval "$evalcmd" --out greedy llama-chat llama-code llama-math)" 0
check "candidates ordered by val_acc at each model's run and step" \
	"$(q "SELECT string_agg(c ->> 'model', ',' ORDER BY o) FROM soup.models,
		  jsonb_array_elements(recipe -> 'greedy_soup' -> 'candidates') WITH ORDINALITY x(c, o) WHERE name = 'greedy'")" \
	"llama-code,llama-chat,llama-math"
# each trial is kept exactly when its score does not drop below the best so far
check "the trials: code alone, + chat kept, + math dropped" "$(q "
	SELECT string_agg((x ->> 'candidate') || ':' || (x ->> 'kept'), ',' ORDER BY (x ->> 'trial')::int)
	FROM soup.models, jsonb_array_elements(recipe -> 'greedy_soup' -> 'trials') x WHERE name = 'greedy'")" \
	"llama-code:true,llama-chat:true,llama-math:false"
check "every decision follows the scores" "$(q "
	WITH t AS (SELECT (x ->> 'trial')::int AS k, (x ->> 'score')::float8 AS score, (x ->> 'kept')::boolean AS kept
			   FROM soup.models, jsonb_array_elements(recipe -> 'greedy_soup' -> 'trials') x WHERE name = 'greedy')
	SELECT bool_and(kept = (k = 0 OR score >= (SELECT max(p.score) FROM t p WHERE p.k < t.k AND p.kept))) FROM t")" t
check "the soup is the average of the kept ingredients" "$(q "
	SELECT soup.merge('greedy-ref', 'avg', ARRAY(SELECT x ->> 'candidate' FROM soup.models,
		   jsonb_array_elements(recipe -> 'greedy_soup' -> 'trials') x WHERE name = 'greedy' AND (x ->> 'kept')::boolean
		   ORDER BY (x ->> 'trial')::int)) > 0")/$(q "
	SELECT count(*) FILTER (WHERE soup.bytes(a.data) <> soup.bytes(b.data)) FROM soup.weights a JOIN soup.weights b
	USING (tensor, chunk) WHERE a.model = 'greedy' AND b.model = 'greedy-ref'")" t/0
soup -q export greedy "$WORK/greedy.safetensors"
check "evaluating the final soup gives the recorded final score" \
	"$(/usr/bin/python3 test/greedy_eval.py "$WORK/greedy.safetensors" "$WORK/chat.safetensors" | tail -1 | cut -d' ' -f2)" \
	"$(q "SELECT recipe -> 'greedy_soup' ->> 'final_score' FROM soup.models WHERE name = 'greedy'")"
mkdir "$WORK/tmp"
TMPDIR="$WORK/tmp" soup -q greedy-soup --metric val_acc --eval "$evalcmd" --out greedy-tmp llama-chat llama-code llama-math
check "no trial model or file left" \
	"$(q "SELECT count(*) FROM soup.models WHERE name LIKE 'pg_soup greedy-soup%'")/$(ls -A "$WORK/tmp" | wc -l)" 0/0
check "--scores instead of a metric, lower is better" \
	"$(code soup greedy-soup --scores 3,1,2 --lower-is-better --eval "$evalcmd" --out greedy2 llama-chat llama-code llama-math)/$(q "
	SELECT recipe -> 'greedy_soup' -> 'trials' -> 0 ->> 'candidate' FROM soup.models WHERE name = 'greedy2'")" 0/llama-code
check "an evaluation that prints no number: exit 5, nothing left" \
	"$(code soup greedy-soup --scores 1,2 --eval 'echo no score here' --out greedy3 llama-chat llama-code)/$(q "
	SELECT count(*) FROM soup.models WHERE name = 'greedy3' OR name LIKE 'pg_soup greedy-soup%'")" 5/0
check "a failing evaluation: exit 5, nothing left" \
	"$(code soup greedy-soup --scores 1,2 --eval 'exit 3' --out greedy3 llama-chat llama-code)/$(q "
	SELECT count(*) FROM soup.models WHERE name = 'greedy3' OR name LIKE 'pg_soup greedy-soup%'")" 5/0
check "a candidate without the metric: exit 1 naming it" \
	"$(code soup greedy-soup --metric val_acc --eval "$evalcmd" --out greedy3 llama-chat llama-base)/$(grep -c 'model "llama-base" has no value of metric "val_acc"' "$WORK/out")" 1/1

# ---- bad input: documented exit codes, nothing left behind ----
models_before=$(q "SELECT count(*) || '/' || (SELECT count(*) FROM soup.chunks) FROM soup.models")
head -c 5000 "$WORK/big.safetensors" >"$WORK/truncated.safetensors"
check "a truncated file: exit 4" "$(code soup import "$WORK/truncated.safetensors" --model t1)" 4
grep -q 'invalid safetensors file' "$WORK/out" && check "the error says why" ok ok || check "the error says why" "$(cat "$WORK/out")" ok
printf '\x10\x00\x00\x00\x00\x00\x00\x00{"a": nonsense}' >"$WORK/badjson.safetensors"
check "a header that is not JSON: exit 4" "$(code soup import "$WORK/badjson.safetensors" --model t2)" 4
check "a missing file: exit 4" "$(code soup import "$WORK/nope.safetensors" --model t3)" 4
check "an existing model name: exit 1" "$(code soup import "$p1" --model peft-230)" 1
check "no --model: exit 2" "$(code soup import "$p1")" 2
check "an unknown command: exit 2" "$(code "$PG_SOUP" frobnicate)" 2
check "--help: exit 0" "$(code "$PG_SOUP" import --help)/$(grep -c -- '--chunk-elems' "$WORK/out")" 0/1
check "no server there: exit 3" "$(code "$PG_SOUP" -d "host=127.0.0.1 port=1 dbname=postgres connect_timeout=3" ls)" 3
q "CREATE DATABASE plain"
check "a database without pg_soup: exit 3" \
	"$(code "$PG_SOUP" -d "host=127.0.0.1 port=$PGPORT dbname=plain user=postgres" ls)/$(grep -c 'does not have the pg_soup extension' "$WORK/out")" 3/1
check "exporting a missing model: exit 1, no file" \
	"$(code soup export no-such-model "$WORK/none.safetensors")/$(ls "$WORK" | grep -c 'none.safetensors' || true)" 1/0
check "failed imports left no rows" \
	"$(q "SELECT count(*) || '/' || (SELECT count(*) FROM soup.chunks) FROM soup.models")" "$models_before"
# a damaged model: the export stops, and no file or temporary file appears
q "DELETE FROM soup.chunks WHERE model_id = (SELECT id FROM soup.models WHERE name = 'big') AND tensor = 'b.bias'"
check "exporting a damaged model: exit 1" "$(code soup export big "$WORK/damaged.safetensors")" 1
check "the error names the tensor" "$(grep -c 'tensor "b.bias"' "$WORK/out")" 1
check "no partial file left" "$(ls "$WORK" | grep -c damaged || true)" 0
check "an import with --chunk-elems out of range: exit 2" "$(code soup import "$p1" --model t4 --chunk-elems 0)" 2

check_summary client
