#!/usr/bin/env python3
"""pg_soup benchmark driver (run through test/bench/run.sh, which generates
the checkpoints, starts a throwaway cluster and exports PGHOST/PGPORT/...).

Measures, in one run and on the same files: a plain memory copy (the
ceiling); the numpy and PyTorch peer scripts (numpy_peer.py, torch_peer.py);
and pg_soup's import, read+merge (SELECT ... GROUP BY over soup.weights),
soup.merge into a durable model, and export, for the methods avg, ema,
fisher and model_stock at K = 2, 4, 8 input checkpoints.  Each pg_soup merge
is checked against the numpy float64 reference in the same run.  Never
asserts timings: it prints one table (and saves it, with the plans and raw
numbers, to test/bench/results/last_run.txt, or last_quick_run.txt with
BENCH_QUICK, so that a smoke run does not overwrite the last full one).

Environment (set by run.sh):
  BENCH_CKPT_DIR   ckpt0..ckpt{K-1}, fisher0.. and base .safetensors (readable by postgres)
  BENCH_OUT_DIR    directory writable by postgres, for exported files
  BENCH_QUICK      1 for the small smoke-test variant
  BENCH_K          numbers of input checkpoints (default "2 4 8")
  BENCH_METHODS    methods (default "avg ema fisher model_stock")
  BENCH_TORCH      0 to skip the PyTorch peer (also skipped when torch is missing)
  BENCH_REPEAT     repetitions for cheap measurements (best is reported)
  BENCH_SLOW       stop repeating a measurement once its runs add up to this (s)
  BENCH_CONFIGS    0 to skip the parallel-workers x OpenMP-threads table
  BENCH_CHUNKS     extra soup.chunk_elems lengths to sweep (avg, K = 4; default none)
  BENCH_CONF       the extra postgresql.conf lines run.sh used (for the report)
"""
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PY = sys.executable
NP_PEER = os.path.join(HERE, "numpy_peer.py")
TORCH_PEER = os.path.join(HERE, "torch_peer.py")

CKPT_DIR = os.environ["BENCH_CKPT_DIR"]
OUT_DIR = os.environ["BENCH_OUT_DIR"]
QUICK = os.environ.get("BENCH_QUICK", "0") not in ("", "0")
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
SLOW = float(os.environ.get("BENCH_SLOW", "40"))
KS = sorted({int(x) for x in os.environ.get("BENCH_K", "2 4 8").split()})
ALL_METHODS = ("avg", "ema", "fisher", "model_stock")
METHODS = [m for m in ALL_METHODS if m in os.environ.get("BENCH_METHODS", " ".join(ALL_METHODS)).split()]
CONFIGS = os.environ.get("BENCH_CONFIGS", "1") not in ("", "0")
CHUNKS = [int(x) for x in os.environ.get("BENCH_CHUNKS", "").split()]
WANT_TORCH = os.environ.get("BENCH_TORCH", "1") not in ("", "0")
KMAX = max(KS)
DECAY = 0.9          # ema
FLOOR = 1e-6         # fisher (pg_soup's default)

LOG = []          # detail lines for the results file (plans, raw timings)
RAW = {}          # every number, dumped as JSON at the end of the results file
RESULTS = os.path.join(HERE, "results", "last_quick_run.txt" if QUICK else "last_run.txt")
PLANS = {}


def ckpt(i):
    return os.path.join(CKPT_DIR, "ckpt%d.safetensors" % i)


def fisher_file(i):
    return os.path.join(CKPT_DIR, "fisher%d.safetensors" % i)


BASE_FILE = os.path.join(CKPT_DIR, "base.safetensors")


def models(k):
    return ["m%d" % i for i in range(k)]


def fishers(k):
    return ["f%d" % i for i in range(k)]


def sql_list(names):
    return ",".join("'%s'" % n for n in names)


def log(*parts):
    line = " ".join(str(p) for p in parts)
    LOG.append(line)
    print(line, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- psql ----

TIME_RE = re.compile(r"^Time: ([0-9.]+) ms")


def psql(script, db="postgres", check=True, want_stderr=False):
    """Run a psql script; return (result lines, [\\timing seconds...]).

    Only statements between '\\timing on' and '\\timing off' are timed; the
    times are psql's (client-observed round trip of each statement)."""
    p = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", db],
                       input=script, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise RuntimeError("psql failed (%d):\n%s\n--- script ---\n%s"
                           % (p.returncode, p.stderr, script))
    rows, times = [], []
    for line in p.stdout.splitlines():
        m = TIME_RE.match(line)
        if m:
            times.append(float(m.group(1)) / 1000.0)
        elif line:
            rows.append(line)
    if want_stderr:
        return rows, times, p.stderr
    return rows, times


def timed(setup, stmts, db):
    """Run setup untimed, then each statement timed; return (rows, times)."""
    script = setup + "\n\\timing on\n" + "\n".join(stmts) + "\n\\timing off\n"
    rows, times = psql(script, db)
    if len(times) != len(stmts):
        raise RuntimeError("expected %d timings, got %d" % (len(stmts), len(times)))
    return rows, times


def run_peer(script, *args):
    p = subprocess.run([PY, script] + [str(a) for a in args], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("%s %s failed:\n%s" % (os.path.basename(script), args[0], p.stderr))
    return json.loads(p.stdout)


def peer_measure(script, *args):
    """Run a peer measurement in a fresh process (REPEAT runs in it, fewer once
    they add up to SLOW/4 s), and in a second process when that was cheap.
    fresh = the best first run of a process (running the script once);
    warm = the best later run (the process's memory already mapped)."""
    outs, total = [], 0.0
    while True:
        o = run_peer(script, *args, "--repeat", REPEAT, "--slow", SLOW / 4)
        outs.append(o)
        total += sum(o["all"])
        if len(outs) >= 2 or total >= SLOW / 8:
            break
    rest = [t for o in outs for t in o["all"][1:]]
    res = dict(outs[-1])
    res.update(fresh=min(o["all"][0] for o in outs), warm=min(rest) if rest else None,
               runs=[o["all"] for o in outs])
    return res


def rm(path):
    if os.path.exists(path):
        os.unlink(path)


def have_torch():
    if not WANT_TORCH:
        return False
    return subprocess.run([PY, "-c", "import torch"], capture_output=True).returncode == 0


# ------------------------------------------------------------ methods ----

def method_inputs(method, k):
    """Files a merge reads: the K checkpoints, plus K Fishers or the base."""
    files = [ckpt(i) for i in range(k)]
    if method == "fisher":
        files += [fisher_file(i) for i in range(k)]
    if method == "model_stock":
        files.append(BASE_FILE)
    return files


def method_models(method, k):
    ms = models(k)
    if method == "fisher":
        ms += fishers(k)
    if method == "model_stock":
        ms.append("base")
    return ms


def peer_args(method, k):
    """numpy_peer/torch_peer arguments (before the files) for one merge."""
    a = ["--method", method, "--decay", DECAY, "--floor", FLOOR]
    if method == "fisher":
        for i in range(k):
            a += ["--fisher", fisher_file(i)]
    if method == "model_stock":
        a += ["--base", BASE_FILE]
    return a


def read_merge_sql(method, k):
    """The read+merge query a user writes over soup.weights; the result is
    computed in full and discarded (count and total elements returned)."""
    return "SELECT count(*), sum(soup.numel(r)) FROM (%s) s;" % read_merge_query(method, k)


def same_as_merged_sql(method, k):
    """Chunks of the read+merge result, and how many differ from the model 'merged'."""
    return ("SELECT count(*), count(*) FILTER (WHERE NOT s.r OPERATOR(soup.=) w.data) "
            "FROM (%s) s JOIN soup.weights w ON w.model = 'merged' AND w.tensor = s.tensor "
            "AND w.chunk = s.chunk;" % read_merge_query(method, k))


def read_merge_query(method, k):
    """SELECT tensor, chunk, r: the merge of one method over soup.weights."""
    ms = sql_list(models(k))
    if method == "avg":
        q = ("SELECT tensor, chunk, soup.avg_weights(data) AS r "
             "FROM soup.weights WHERE model IN (%s) GROUP BY tensor, chunk" % ms)
    elif method == "ema":
        # m0 < m1 < ... < m7: ORDER BY model is the checkpoints' order
        q = ("SELECT tensor, chunk, soup.ema(data, %r ORDER BY model) AS r "
             "FROM soup.weights WHERE model IN (%s) GROUP BY tensor, chunk" % (DECAY, ms))
    elif method == "fisher":
        pairs = ",".join("('m%d','f%d')" % (i, i) for i in range(k))
        q = ("SELECT w.tensor, w.chunk, soup.fisher_merge(w.data, f.data) AS r "
             "FROM (VALUES %s) p(model, fisher) "
             "JOIN soup.weights w ON w.model = p.model "
             "JOIN soup.weights f ON f.model = p.fisher AND f.tensor = w.tensor "
             "AND f.chunk = w.chunk "
             "GROUP BY w.tensor, w.chunk" % pairs)
    elif method == "model_stock":
        # both passes, as docs/merges.md writes them by hand (and soup.merge runs them)
        q = ("WITH per_chunk AS ("
             "SELECT w.tensor, w.chunk, soup.gram(array_agg(w.data ORDER BY w.model), "
             "(SELECT b.data FROM soup.weights b WHERE b.model = 'base' "
             "AND b.tensor = w.tensor AND b.chunk = w.chunk)) AS g "
             "FROM soup.weights w WHERE w.model IN (%s) GROUP BY w.tensor, w.chunk), "
             "ratio AS (SELECT tensor, soup.model_stock_ratio(soup.dd_sum(g), %d) / %d AS lambda "
             "FROM per_chunk GROUP BY tensor) "
             "SELECT w.tensor, w.chunk, soup.task_arithmetic(w.data, b.data, 1.0, r.lambda) AS r "
             "FROM soup.weights w "
             "JOIN soup.weights b ON b.model = 'base' AND b.tensor = w.tensor AND b.chunk = w.chunk "
             "JOIN ratio r ON r.tensor = w.tensor "
             "WHERE w.model IN (%s) GROUP BY w.tensor, w.chunk" % (ms, k, k, ms))
    else:
        raise ValueError(method)
    return q


def merge_sql(method, k, target="merged"):
    arr = "ARRAY[%s]" % sql_list(models(k))
    if method == "avg":
        return "SELECT soup.merge('%s', 'avg', %s);" % (target, arr)
    if method == "ema":
        return "SELECT soup.merge('%s', 'ema', %s, params => '{\"decay\": %r}');" % (
            target, arr, DECAY)
    if method == "fisher":
        return ("SELECT soup.merge('%s', 'fisher', %s, params => '{\"fishers\": [%s]}');" % (
            target, arr, ", ".join('"%s"' % f for f in fishers(k))))
    if method == "model_stock":
        return "SELECT soup.merge('%s', 'model_stock', %s, base => 'base');" % (target, arr)
    raise ValueError(method)


# ------------------------------------------------------------ pg_soup ----

FORCE_PARALLEL = ("SET parallel_setup_cost = 0;\nSET parallel_tuple_cost = 0;\n"
                  "SET min_parallel_table_scan_size = 0;\nSET min_parallel_index_scan_size = 0;")


def gucs(workers=None, threads=None, chunk=None, force_parallel=False):
    s = ["LOAD 'pg_soup';"]
    if workers is not None:
        s.append("SET max_parallel_workers_per_gather = %d;" % workers)
    if force_parallel:
        s.append(FORCE_PARALLEL)
    if threads is not None:
        s.append("SET soup.threads = %d;" % threads)
    if chunk is not None:
        s.append("SET soup.chunk_elems = %d;" % chunk)
    return "\n".join(s)


def keep_going(times):
    """Repeat a measurement up to REPEAT times while it stays cheap."""
    return len(times) < REPEAT and sum(times) < SLOW


def read_merge(db, sql, numel, warm=True, max_sessions=None, warm_first=False, **kw):
    """Time a read+merge query in fresh sessions (first run in a new
    backend) and, when cheap, again in the same session (warm backend:
    its malloc arena and page tables already hold the memory)."""
    fresh, warm_t = [], []
    while True:
        n_runs = 2 if warm and (warm_first or (fresh and min(fresh) < SLOW / 4)) else 1
        rows, times = timed(gucs(**kw), [sql] * n_runs, db)
        for r in rows:
            n = int(r.split("|")[1])
            if n != numel:
                raise RuntimeError("read+merge returned %d elements, expected %d" % (n, numel))
        fresh.append(times[0])
        warm_t += times[1:]
        if not keep_going(fresh) or (max_sessions and len(fresh) >= max_sessions):
            break
    return {"fresh": min(fresh), "fresh_all": fresh,
            "warm": min(warm_t) if warm_t else None, "warm_all": warm_t}


def vacuum(db):
    psql("VACUUM (ANALYZE) soup.chunks;\nVACUUM (ANALYZE) soup.tensors;\n"
         "VACUUM (ANALYZE) soup.models;\nCHECKPOINT;", db)


def merge_export(db, method, k, out):
    """soup.merge into a durable model, then export it; repeated while cheap.
    Leaves the last export in `out`.  Returns the times of the best run."""
    me, ex, tot = [], [], []
    while True:
        psql("DELETE FROM soup.models WHERE name = 'merged';", db)
        psql("VACUUM soup.chunks;\nCHECKPOINT;", db)
        rm(out)
        _, (t1, t2) = timed(gucs(), [
            merge_sql(method, k),
            "SELECT soup.export_safetensors('merged', '%s');" % out], db)
        me.append(t1)
        ex.append(t2)
        tot.append(t1 + t2)
        if not keep_going(tot):
            break
    i = tot.index(min(tot))
    return {"merge": me[i], "export_merged": ex[i], "merge_export": tot[i],
            "merge_all": me, "export_merged_all": ex}


def import_models(db, chunk=None):
    """Import every input the methods need; returns {model: seconds}."""
    todo = [(ckpt(i), "m%d" % i) for i in range(KMAX)]
    if "fisher" in METHODS:
        todo += [(fisher_file(i), "f%d" % i) for i in range(KMAX)]
    if "model_stock" in METHODS:
        todo.append((BASE_FILE, "base"))
    stmts = ["SELECT soup.import_safetensors('%s', '%s');" % (f, m) for f, m in todo]
    _, times = timed(gucs(chunk=chunk), stmts, db)
    return {m: t for (_, m), t in zip(todo, times)}


def sweep_one(chunk, info, k):
    """avg at K inputs, at one soup.chunk_elems: import, read+merge, merge+export, export."""
    db = "soup_c%d" % chunk
    res = {"chunk_elems": chunk}
    psql("DROP DATABASE IF EXISTS %s;\nCREATE DATABASE %s;" % (db, db))
    psql("CREATE EXTENSION pg_soup;", db)
    stmts = ["SELECT soup.import_safetensors('%s', 'm%d');" % (ckpt(i), i) for i in range(k)]
    _, times = timed(gucs(chunk=chunk), stmts, db)
    res["import"], res["import_each"] = sum(times), times
    t0 = time.perf_counter()
    vacuum(db)
    res["vacuum_checkpoint"] = time.perf_counter() - t0
    rows, _ = psql("SELECT pg_total_relation_size('soup.chunks'), "
                   "(SELECT count(*) FROM soup.weights WHERE model = 'm0');", db)
    size, nrows = rows[0].split("|")
    res["storage_bytes"], res["rows_per_model"] = int(size), int(nrows)
    r = read_merge(db, read_merge_sql("avg", k), info["numel"])
    res["read_merge"], res["read_merge_warm"] = r["fresh"], r["warm"]
    out = os.path.join(OUT_DIR, "sweep.safetensors")
    res.update(merge_export(db, "avg", k, out))
    res["check"] = run_peer(NP_PEER, "check", *peer_args("avg", k), "--merged", out,
                            *[ckpt(i) for i in range(k)])
    rm(out)
    out0 = os.path.join(OUT_DIR, "m0.safetensors")
    _, (t,) = timed(gucs(), ["SELECT soup.export_safetensors('m0', '%s');" % out0], db)
    res["export"] = t
    rm(out0)
    log("  sweep chunk %d: import %.2f read+merge %.2f warm %s merge %.2f export %.2f check %s" % (
        chunk, res["import"], res["read_merge"],
        "%.2f" % res["read_merge_warm"] if res["read_merge_warm"] else "-",
        res["merge"], res["export"], res["check"]["n_diff"]))
    psql("DROP DATABASE %s;" % db)
    return res


def build_info():
    """The source commit and when the installed pg_soup.so was built."""
    root = os.path.dirname(os.path.dirname(HERE))
    try:
        rev = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True).stdout.strip() or "?"
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--", "src",
                                "pg_soup--0.1.0.sql"], capture_output=True, text=True).stdout.strip()
    except OSError:
        rev, dirty = "?", ""
    so = "?"
    try:
        libdir = subprocess.run(["pg_config", "--pkglibdir"], capture_output=True,
                                text=True).stdout.strip()
        so = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(
            os.path.getmtime(os.path.join(libdir, "pg_soup.so"))))
    except OSError:
        pass
    return "source %s%s; installed pg_soup.so built %s" % (
        rev, " (src modified)" if dirty else "", so)


def cpu_busy(seconds=1.0):
    """Fraction of all CPUs busy (by anything) over a short window."""
    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]
    t0, i0 = snap()
    time.sleep(seconds)
    t1, i1 = snap()
    return 1.0 - (i1 - i0) / max(1, t1 - t0)


# ------------------------------------------------------------- report ----

def gb(x):
    return x / 1e9


def fmt_t(t):
    if t is None:
        return "-"
    return "%.2f" % t if t >= 0.1 else "%.3f" % t


def fmt_r(peer, pg):
    return "%.2f" % (peer / pg) if (peer and pg) else "-"


def fmt_check(c):
    if not c["ok"]:
        return "MISMATCH %s" % c["problems"]
    if c["n_diff"] == 0:
        return "identical"
    ulp = c.get("max_ulp", 0)
    return "%d (%.2g%%) differ, max abs %.2g%s" % (
        c["n_diff"], 100.0 * c["n_diff"] / c["numel"], c["max_abs_diff"],
        ", <= %d ulp" % ulp if 0 < ulp <= 16 else "")


def main():
    t_start = time.perf_counter()
    info = json.loads(os.environ["BENCH_GEN_INFO"])
    numel = info["numel"]
    file_bytes = os.path.getsize(ckpt(0))
    RAW["gen"] = info
    RAW["settings"] = {"K": KS, "methods": METHODS, "repeat": REPEAT, "slow": SLOW,
                       "decay": DECAY, "floor": FLOOR}
    build = build_info()  # before the run: the tree may move on meanwhile
    busy_before = cpu_busy()
    with open("/proc/loadavg") as f:
        load_before = f.read().split()[0]
    torch_ok = have_torch()
    if WANT_TORCH and not torch_ok:
        log("WARNING: no torch in %s (apt-get install python3-torch); skipping the PyTorch peer" % PY)

    log("memory-copy ceiling ...")
    mc = run_peer(NP_PEER, "memcpy", "--mb", "500", "--repeat", "3")
    RAW["memcpy"] = mc
    ceiling = max(mc["gbps_1t"], mc["gbps_mt"])

    rows, _ = psql("LOAD 'pg_soup'; SELECT current_setting('soup.chunk_elems'), version(), "
                   "current_setting('max_parallel_workers_per_gather'), "
                   "current_setting('shared_buffers'), current_setting('fsync'), "
                   "current_setting('jit'), current_setting('soup.threads');")
    default_chunk, version, mpwg, sb, fsync, jit, sthreads = rows[0].split("|")
    default_chunk = int(default_chunk)

    # ---- pg_soup: import everything once, at the default chunk length
    db = "soup_bench"
    psql("DROP DATABASE IF EXISTS %s;\nCREATE DATABASE %s;" % (db, db))
    psql("CREATE EXTENSION pg_soup;", db)
    log("pg_soup import (chunk_elems %d) ..." % default_chunk)
    imp = import_models(db)
    RAW["import"] = imp
    log("  import " + " ".join("%s %.2f" % (m, t) for m, t in imp.items()))
    t0 = time.perf_counter()
    vacuum(db)
    RAW["vacuum_checkpoint"] = time.perf_counter() - t0
    rows, _ = psql("SELECT pg_total_relation_size('soup.chunks'), "
                   "(SELECT count(*) FROM soup.weights WHERE model = 'm0');", db)
    storage, rows_per_model = (int(x) for x in rows[0].split("|"))
    n_stored = len(imp)

    # ---- a warm-up round, as on a server that has been up for a while: the
    # first touch of shared_buffers pages, WAL segments and relation files is
    # paid here, not by the steady-state figures below
    log("warm-up round (import, merge, read+merge, delete) ...")
    t0 = time.perf_counter()
    psql(gucs() + "\nSELECT soup.import_safetensors('%s', 'warmup');\n"
         "SELECT soup.merge('warmup_merge', 'avg', ARRAY['m0', 'warmup']);\n%s\n"
         "DELETE FROM soup.models WHERE name LIKE 'warmup%%';" % (
             ckpt(0), read_merge_sql("avg", 2)), db)
    vacuum(db)
    RAW["warmup_seconds"] = time.perf_counter() - t0
    # the steady-state import: one checkpoint again, deleted afterwards
    imp_steady = []
    while True:
        _, (t,) = timed(gucs(), ["SELECT soup.import_safetensors('%s', 'steady');" % ckpt(0)], db)
        imp_steady.append(t)
        psql("DELETE FROM soup.models WHERE name = 'steady';", db)
        vacuum(db)
        if not keep_going(imp_steady):
            break
    RAW["import_steady"] = imp_steady
    log("  import, steady state %s" % " ".join("%.2f" % t for t in imp_steady))

    # ---- export of an imported model, and the peers' load / write
    out0 = os.path.join(OUT_DIR, "m0.safetensors")
    ex0 = []
    while True:
        rm(out0)
        _, (t,) = timed(gucs(), ["SELECT soup.export_safetensors('m0', '%s');" % out0], db)
        ex0.append(t)
        if not keep_going(ex0):
            break
    with open(out0, "rb") as a, open(ckpt(0), "rb") as b:
        roundtrip_ok = a.read() == b.read()
    rm(out0)
    log("  export m0 %s; identical to its file: %s" % (" ".join("%.2f" % t for t in ex0),
                                                        roundtrip_ok))
    peers_io = {"numpy": {}, "torch": {}}
    wout = os.path.join(OUT_DIR, "peer_write.safetensors")
    log("peers: load and write ...")
    for name, script in (("numpy", NP_PEER), ("torch", TORCH_PEER)):
        if name == "torch" and not torch_ok:
            continue
        for k in KS:
            peers_io[name]["load%d" % k] = peer_measure(script, "load", *[ckpt(i) for i in range(k)])
        peers_io[name]["write"] = peer_measure(script, "write", "--out", wout, ckpt(0))
    RAW["peers_io"] = peers_io

    # ---- every (K, method): peers, pg_soup read+merge, soup.merge + export, check
    results = {}
    for k in KS:
        for method in METHODS:
            key = "%s/%d" % (method, k)
            files = method_inputs(method, k)
            in_bytes = sum(os.path.getsize(f) for f in files)
            pa = peer_args(method, k)
            ck = [ckpt(i) for i in range(k)]
            r = {"method": method, "k": k, "input_bytes": in_bytes, "input_files": len(files)}
            t_combo = time.perf_counter()
            log("%s, K = %d (%d files, %.2f GB in) ..." % (method, k, len(files), gb(in_bytes)))
            np_out = os.path.join(OUT_DIR, "numpy.safetensors")
            t_out = os.path.join(OUT_DIR, "torch.safetensors")
            pg_out = os.path.join(OUT_DIR, "merged.safetensors")
            peers = [("numpy_f32", NP_PEER, "f32", np_out), ("numpy_f64", NP_PEER, "f64", wout)]
            if torch_ok:
                peers.append(("torch_f32", TORCH_PEER, "f32", t_out))
            for name, script, acc, out in peers:
                r[name] = {"merge": peer_measure(script, "merge", *pa, "--acc", acc, *ck),
                           "e2e": peer_measure(script, "merge", *pa, "--acc", acc,
                                               "--out", out, "--keep", *ck)}
                log("  %-9s read+merge %s | +write %s (runs per process)" % (
                    name, r[name]["merge"]["runs"], r[name]["e2e"]["runs"]))
            rm(wout)

            sql = read_merge_sql(method, k)
            r["sql"] = sql
            rmg = read_merge(db, sql, numel)
            r["read_merge"], r["read_merge_all"] = rmg["fresh"], rmg["fresh_all"]
            r["read_merge_warm"], r["read_merge_warm_all"] = rmg["warm"], rmg["warm_all"]
            log("  pg_soup read+merge fresh %s | warm %s" % (
                " ".join("%.2f" % t for t in rmg["fresh_all"]),
                " ".join("%.2f" % t for t in rmg["warm_all"])))
            explain = "EXPLAIN (ANALYZE, BUFFERS) " if k == KS[0] else "EXPLAIN "
            plan, _ = psql(gucs() + "\n" + explain + sql, db)
            PLANS["read+merge %s K=%d" % (method, k)] = plan
            r["plan_parallel"] = any("Gather" in ln for ln in plan)
            r.update(merge_export(db, method, k, pg_out))
            r["merge_sql"] = merge_sql(method, k)
            log("  pg_soup soup.merge %s | export merged %s" % (
                " ".join("%.2f" % t for t in r["merge_all"]),
                " ".join("%.2f" % t for t in r["export_merged_all"])))
            if k == KS[0] or QUICK:
                # the by-hand query gives the driver's bits (at the smallest K; all K if quick)
                rows, _ = psql(gucs() + "\n" + same_as_merged_sql(method, k), db)
                n, nd = (int(x) for x in rows[0].split("|"))
                r["read_merge_vs_merge"] = {"chunks": n, "differ": nd}
                log("  read+merge result vs the soup.merge model: %d chunks, %d differ" % (n, nd))
            if r["read_merge"] > 2 * r["merge"] and k != KS[0]:
                # reading slower than soup.merge, which reads the same and also writes
                t0 = time.perf_counter()
                plan, _ = psql(gucs() + "\nEXPLAIN (ANALYZE, BUFFERS) " + sql, db)
                PLANS["read+merge %s K=%d (slower than soup.merge: analyzed)" % (method, k)] = plan
                log("  read+merge slower than soup.merge: EXPLAIN ANALYZE took %.2f s (plan in "
                    "%s)" % (time.perf_counter() - t0, RESULTS))
            r["import"] = sum(imp[m] for m in method_models(method, k))
            merged = [pg_out, np_out] + ([t_out] if torch_ok else [])
            chk = run_peer(NP_PEER, "check", *pa, *sum((["--merged", f] for f in merged), []), *ck)
            chk = chk.get("results", [chk])
            r["check_pg"], r["check_numpy_f32"] = chk[0], chk[1]
            r["check_torch_f32"] = chk[2] if torch_ok else None
            log("  check vs numpy f64 reference: pg_soup %s | numpy f32 %s | torch f32 %s" % (
                fmt_check(chk[0]), fmt_check(chk[1]), fmt_check(chk[2]) if torch_ok else "-"))
            for f in merged:
                rm(f)
            with open("/proc/loadavg") as f:
                r["loadavg"] = f.read().split()[0]
            r["wall_seconds"] = time.perf_counter() - t_combo
            log("  load average %s; %.0f s for %s K=%d (peers, pg_soup, check)" % (
                r["loadavg"], r["wall_seconds"], method, k))
            results[key] = r
    psql("DELETE FROM soup.models WHERE name = 'merged';", db)
    RAW["results"] = results

    # ---- parallel workers x OpenMP threads (avg, at the K nearest 4)
    cfg = []
    kc = min(KS, key=lambda x: abs(x - 4))
    if CONFIGS and "avg" in METHODS:
        sql = read_merge_sql("avg", kc)
        for label, kw in (("workers 0", {"workers": 0}),
                          ("workers 2, forced", {"workers": 2, "force_parallel": True})):
            for th in (1, 0):
                rr = read_merge(db, sql, numel, max_sessions=1, warm_first=True, threads=th, **kw)
                p, _ = psql(gucs(threads=th, **kw) + "\nEXPLAIN " + sql, db)
                cfg.append({"label": label, "threads": th, "fresh": rr["fresh"], "warm": rr["warm"],
                            "gather": any("Gather" in ln for ln in p)})
                log("  avg K=%d %s threads=%s read+merge fresh %.2f warm %s" % (
                    kc, label, th or "auto", rr["fresh"],
                    "%.2f" % rr["warm"] if rr["warm"] else "-"))
    RAW["configs"] = cfg
    psql("DROP DATABASE %s;" % db)

    # ---- optional chunk-length sweep (avg, K nearest 4)
    sweep = []
    for c in CHUNKS:
        log("sweep: soup.chunk_elems = %d ..." % c)
        sweep.append(sweep_one(c, info, kc))
    RAW["sweep"] = sweep
    rm(wout)

    # ================================================================ report
    L = []
    add = L.append
    add("pg_soup benchmark%s: GPT-2-small-shaped f32 checkpoints, %s params, %.1f MB each; "
        "K = %s; methods %s" % (" (BENCH_QUICK: reduced size)" if QUICK else "",
                                format(numel, ","), file_bytes / 1e6,
                                ", ".join(map(str, KS)), ", ".join(METHODS)))
    add("machine: %d cores; %s; CPU busy before start %.0f%% (load avg %s)" % (
        os.cpu_count(), version.split(" on ")[0], 100 * busy_before, load_before))
    add("pg_soup: %s" % build)
    add("cluster: shared_buffers=%s, fsync=%s, jit=%s, soup.threads=%s (0 = one per core), "
        "soup.chunk_elems=%d; conf: %s" % (sb, fsync, jit, sthreads, default_chunk,
                                           os.environ.get("BENCH_CONF", "")))
    tthreads = None
    if torch_ok:
        any_t = next(r["torch_f32"]["merge"] for r in results.values())
        tthreads = any_t["threads"]
        add("peers: numpy %s (1 core); PyTorch %s from Debian (%d intra-op thread%s, its default)"
            % (subprocess.run([PY, "-c", "import numpy; print(numpy.__version__)"],
                              capture_output=True, text=True).stdout.strip(),
               any_t["torch"], tthreads, "" if tthreads == 1 else "s"))
    add("best of up to %d runs (fewer once runs add up to > %.0f s); GB = 1e9 bytes" % (REPEAT, SLOW))
    add("memory-copy ceiling (numpy copyto, 500 MB, best of 3): 1 thread %.1f GB/s, "
        "%d threads %.1f GB/s (bytes copied/s; traffic is 2x); 'ceil%%' below is against %.1f GB/s"
        % (mc["gbps_1t"], mc["threads"], mc["gbps_mt"], ceiling))
    add("")
    cols = ["method", "K", "phase", "pg_soup s", "numpy s", "np f64 s", "torch s",
            "x numpy", "x np f64", "x torch", "GB/s", "ceil%"]
    wid = [11, 2, 22, 9, 8, 8, 8, 7, 8, 7, 6, 6]
    add("  ".join(h.rjust(w) if i > 2 else h.ljust(w) for i, (h, w) in enumerate(zip(cols, wid))))
    add("  ".join("-" * w for w in wid))

    def row(method, k, phase, t_pg, bytes_, t_np=None, t_np64=None, t_torch=None):
        g = gb(bytes_) / t_pg if t_pg else None
        cells = [method, str(k), phase, fmt_t(t_pg), fmt_t(t_np), fmt_t(t_np64), fmt_t(t_torch),
                 fmt_r(t_np, t_pg), fmt_r(t_np64, t_pg), fmt_r(t_torch, t_pg),
                 "%.2f" % g if g else "-", "%.1f" % (100 * g / ceiling) if g else "-"]
        add("  ".join(c.rjust(w) if i > 2 else c.ljust(w)
                      for i, (c, w) in enumerate(zip(cells, wid))).rstrip())

    tio = peers_io.get("torch", {})
    nio = peers_io["numpy"]
    for k in KS:
        row("(files)", k, "import, fresh cluster", sum(imp["m%d" % i] for i in range(k)),
            k * file_bytes, nio["load%d" % k]["fresh"], None,
            tio["load%d" % k]["fresh"] if tio else None)
    row("(files)", 1, "import, steady state", min(imp_steady), file_bytes)
    row("(files)", 1, "export 1 model", min(ex0), file_bytes, nio["write"]["fresh"], None,
        tio["write"]["fresh"] if tio else None)
    for method in METHODS:
        for k in KS:
            r = results["%s/%d" % (method, k)]
            b = r["input_bytes"]
            n32, n64 = r["numpy_f32"], r["numpy_f64"]
            tt = r.get("torch_f32") or {"merge": {}, "e2e": {}}
            row(method, k, "read+merge, new sess.", r["read_merge"], b, n32["merge"]["fresh"],
                n64["merge"]["fresh"], tt["merge"].get("fresh"))
            if r["read_merge_warm"]:
                row(method, k, "read+merge, steady", r["read_merge_warm"], b, n32["merge"]["warm"],
                    n64["merge"]["warm"], tt["merge"].get("warm"))
            row(method, k, "soup.merge, steady", r["merge"], b, n32["e2e"]["fresh"],
                n64["e2e"]["fresh"], tt["e2e"].get("fresh"))
            row(method, k, "merge + export", r["merge_export"], b, n32["e2e"]["fresh"],
                n64["e2e"]["fresh"], tt["e2e"].get("fresh"))
            row(method, k, "import+merge+export", r["import"] + r["merge_export"], b,
                n32["e2e"]["fresh"], n64["e2e"]["fresh"], tt["e2e"].get("fresh"))
    add("  x numpy / x np f64 / x torch = peer time / pg_soup time (> 1: pg_soup faster).  "
        "GB/s = bytes of input files / pg_soup time;")
    add("  ceil% = that as a percentage of the copy ceiling.  Inputs: K checkpoints, + K Fisher "
        "files (fisher), + the base (model_stock).")
    add("  Fresh and steady: 'fresh cluster' figures are the first work a new cluster does (every "
        "shared_buffers page, WAL segment and")
    add("  relation page touched for the first time); 'steady' figures come after a warm-up round "
        "(import, merge, read+merge, delete),")
    add("  as on a server that has been up.  read+merge runs in a new session (which still maps "
        "shared memory afresh) and again in")
    add("  the same session ('steady'); soup.merge and export always run after the warm-up.  The "
        "peer that counts is numpy (float32, memmap).")
    add("  Phases: import = soup.import_safetensors of the K checkpoints (peers: read the files "
        "into memory, as safetensors load_file);")
    add("  export = soup.export_safetensors of an imported model (peers: write the tensors from "
        "memory); read+merge = SELECT ... GROUP BY")
    add("  over soup.weights in a new session (peers: merge from memory-mapped files, first run "
        "in a new process); warm = a later run in the same")
    add("  session / process (memory already mapped: the fresh-vs-warm gap is mostly page "
        "faults); soup.merge = the")
    add("  driver writing a committed model; merge + export = that, then the file; "
        "import+merge+export adds importing every input:")
    add("  files in, file out.  The peers' time for the last three is read+merge+write of a "
        "safetensors file (no fsync; fsync is off in the cluster too).")
    add("  numpy = the typical script in float32; np f64 = float64 following pg_soup's formulas "
        "(the reference below); torch = float32 in-place ops.")
    add("")
    add("correctness (each result vs the numpy float64 reference rounded to f32, same run):")
    add("  %-11s %2s  %-46s %-46s %s" % ("method", "K", "pg_soup (exported soup.merge)",
                                         "numpy f32 script", "torch f32 script"))
    for method in METHODS:
        for k in KS:
            r = results["%s/%d" % (method, k)]
            add("  %-11s %2d  %-46s %-46s %s" % (
                method, k, fmt_check(r["check_pg"]), fmt_check(r["check_numpy_f32"]),
                fmt_check(r["check_torch_f32"]) if r["check_torch_f32"] else "-"))
    sam = ["%s K=%d %s" % (r["method"], r["k"],
                           "same" if r["read_merge_vs_merge"]["differ"] == 0 and
                           r["read_merge_vs_merge"]["chunks"] == rows_per_model
                           else "%d of %d chunks differ" % (r["read_merge_vs_merge"]["differ"],
                                                            r["read_merge_vs_merge"]["chunks"]))
           for r in results.values() if "read_merge_vs_merge" in r]
    add("  read+merge query result vs the soup.merge model, chunk by chunk (soup.=): " + ", ".join(sam))
    add("  (every pg_soup result is expected to be identical: the reference follows "
        "docs/merges.md, its model_stock Gram matrix summed")
    add("  with error-free transformations as pg_soup's double-double sums are; the scripts' "
        "float32 arithmetic is not expected to be.)")
    add("  export of m0 identical to its file: %s; peers' writes identical: numpy %s, torch %s" % (
        "yes" if roundtrip_ok else "NO", nio["write"]["identical"],
        tio["write"]["identical"] if tio else "-"))
    add("")
    add("storage: %d models imported (%s), pg_total_relation_size(soup.chunks) = %.2f GB = %.3f x "
        "their files; %d chunk rows per model; untimed VACUUM+CHECKPOINT after import %.0f s" % (
            n_stored, ", ".join(imp), gb(storage), storage / (n_stored * file_bytes),
            rows_per_model, RAW["vacuum_checkpoint"]))
    if cfg:
        add("")
        add("parallel workers x OpenMP threads (avg read+merge, K = %d, one session: fresh run, "
            "then warm run; soup.threads 0 = one per core):" % kc)
        b = results["avg/%d" % kc]["input_bytes"]
        for c in cfg:
            add("  %-18s soup.threads=%-4s Gather in plan: %-3s  fresh %s s (%.2f GB/s)  warm %s" % (
                c["label"], c["threads"] or "auto", "yes" if c["gather"] else "no",
                fmt_t(c["fresh"]), gb(b) / c["fresh"],
                "%s s (%.2f GB/s)" % (fmt_t(c["warm"]), gb(b) / c["warm"]) if c["warm"] else "-"))
        add("  ('forced' = parallel_setup_cost = parallel_tuple_cost = 0, "
            "min_parallel_table_scan_size = 0)")
    if sweep:
        add("")
        add("chunk-length sweep (avg, K = %d; seconds):" % kc)
        add("  chunk_elems  rows/mdl  stored  import  read+merge  warm   merge  merge+exp  export  check")
        b = kc * file_bytes
        for s in sweep:
            add("  %-11d  %-8d  %-6.3f  %-6.2f  %-10.2f  %-5s  %-5.2f  %-9.2f  %-6.2f  %s" % (
                s["chunk_elems"], s["rows_per_model"], s["storage_bytes"] / b, s["import"],
                s["read_merge"], fmt_t(s["read_merge_warm"]), s["merge"], s["merge_export"],
                s["export"], fmt_check(s["check"])))
    add("")
    add("notes: each pg_soup measurement is a new psql session unless marked warm; input files "
        "are page-cached; autovacuum=off, with")
    add("  VACUUM (ANALYZE) + CHECKPOINT run untimed after the imports and before each soup.merge.  "
        "ema: decay %g, ORDER BY model (= file order);" % DECAY)
    add("  fisher: weights 1, floor %g, Fisher i = the squares of standard normals; model_stock: "
        "base = another random checkpoint." % FLOOR)
    with open("/proc/loadavg") as f:
        load_after = " ".join(f.read().split()[:3])
    add("total benchmark wall time (after generation): %.0f s; load average at the end %s "
        "(other work on the machine is not excluded)" % (time.perf_counter() - t_start, load_after))

    report = "\n".join(L)
    print(report)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(RESULTS, "w") as f:
        f.write(report + "\n\n==== read+merge SQL and soup.merge calls (largest K) ====\n")
        for method in METHODS:
            r = results["%s/%d" % (method, KMAX)]
            f.write("-- %s\n%s\n%s\n\n" % (method, r["sql"], r["merge_sql"]))
        for name, plan in PLANS.items():
            f.write("==== plan: %s ====\n%s\n\n" % (name, "\n".join(plan)))
        f.write("==== log ====\n" + "\n".join(LOG) + "\n")
        f.write("\n==== raw ====\n" + json.dumps(RAW, indent=1) + "\n")


if __name__ == "__main__":
    main()
