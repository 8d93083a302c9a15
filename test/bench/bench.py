#!/usr/bin/env python3
"""pg_soup benchmark driver (run through test/bench/run.sh, which generates
the checkpoints, starts a throwaway cluster and exports PGHOST/PGPORT/...).

Never asserts timings: it prints one report (and saves it, with the plans
and raw numbers, to test/bench/results/last_run.txt).

Environment (set by run.sh):
  BENCH_CKPT_DIR   directory with ckpt0..3.safetensors (readable by postgres)
  BENCH_OUT_DIR    directory writable by postgres, for exported files
  BENCH_QUICK      1 for the small smoke-test variant
  BENCH_CHUNKS     chunk lengths to sweep (space separated elements)
  BENCH_REPEAT     repetitions for cheap measurements (best is reported)
  BENCH_SLOW       stop repeating a measurement once its runs add up to this (s)
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
PEER = os.path.join(HERE, "numpy_peer.py")

CKPT_DIR = os.environ["BENCH_CKPT_DIR"]
OUT_DIR = os.environ["BENCH_OUT_DIR"]
QUICK = os.environ.get("BENCH_QUICK", "0") not in ("", "0")
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
# stop repeating a measurement once its runs add up to this many seconds
SLOW = float(os.environ.get("BENCH_SLOW", "40"))
CHUNKS = [int(x) for x in os.environ.get(
    "BENCH_CHUNKS", "65536 262144 1048576 4194304").split()]
NFILES = 4
MODELS = ["m%d" % i for i in range(NFILES)]
FILES = [os.path.join(CKPT_DIR, "ckpt%d.safetensors" % i) for i in range(NFILES)]
MODEL_ARRAY = "ARRAY[%s]" % ",".join("'%s'" % m for m in MODELS)
MODEL_LIST = ",".join("'%s'" % m for m in MODELS)

LOG = []          # detail lines for the results file (plans, raw timings)
RAW = {}          # every number, dumped as JSON at the end of the results file


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


def peer(*args):
    p = subprocess.run([PY, PEER] + list(args), capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("numpy_peer %s failed:\n%s" % (args[0], p.stderr))
    return json.loads(p.stdout)


def rm(path):
    if os.path.exists(path):
        os.unlink(path)


# ------------------------------------------------------------ pg_soup ----

READ_MERGE = ("SELECT count(*), sum(soup.numel(avg)) FROM ("
              "SELECT tensor, chunk, soup.avg_weights(data) AS avg "
              "FROM soup.weights WHERE model IN (%s) "
              "GROUP BY tensor, chunk) s;" % MODEL_LIST)


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


def read_merge(db, numel, warm=True, max_sessions=None, warm_first=False, **kw):
    """Time the read+merge query in fresh sessions (first run in a new
    backend) and, when cheap, again in the same session (warm backend:
    its malloc arena and page tables already hold the memory)."""
    fresh, warm_t = [], []
    while True:
        n_runs = 2 if warm and (warm_first or (fresh and min(fresh) < SLOW / 4)) else 1
        rows, times = timed(gucs(**kw), [READ_MERGE] * n_runs, db)
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


def sweep_one(chunk, info, do_configs):
    db = "soup_c%d" % chunk
    res = {"chunk_elems": chunk}
    psql("DROP DATABASE IF EXISTS %s;\nCREATE DATABASE %s;" % (db, db))
    psql("CREATE EXTENSION pg_soup;", db)

    # -- import: once per chunk length (each file ~0.5 GB)
    stmts = ["SELECT soup.import_safetensors('%s', '%s');" % (f, m)
             for f, m in zip(FILES, MODELS)]
    _, times = timed(gucs(chunk=chunk), stmts, db)
    res["import_each"] = times
    res["import"] = sum(times)
    log("  chunk %d: import %s s" % (chunk, " ".join("%.2f" % t for t in times)))

    # -- tidy up as autovacuum would (autovacuum is off to keep timings clean)
    t0 = time.perf_counter()
    psql("VACUUM (ANALYZE) soup.chunks;\nVACUUM (ANALYZE) soup.tensors;\n"
         "VACUUM (ANALYZE) soup.models;\nCHECKPOINT;", db)
    res["vacuum_checkpoint"] = time.perf_counter() - t0
    rows, _ = psql("SELECT pg_total_relation_size('soup.chunks'), "
                   "(SELECT count(*) FROM soup.chunks c JOIN soup.models m ON m.id = c.model_id "
                   " WHERE m.name = 'm0');", db)
    size, nrows = rows[0].split("|")
    res["storage_bytes"] = int(size)
    res["rows_per_model"] = int(nrows)

    # -- read+merge (SELECT ... GROUP BY, result discarded)
    rm_ = read_merge(db, info["numel"])
    res["read_merge"], res["read_merge_all"] = rm_["fresh"], rm_["fresh_all"]
    res["read_merge_warm"], res["read_merge_warm_all"] = rm_["warm"], rm_["warm_all"]
    log("  chunk %d: read+merge fresh %s | warm %s" % (
        chunk, " ".join("%.2f" % t for t in rm_["fresh_all"]),
        " ".join("%.2f" % t for t in rm_["warm_all"])))
    plan, _ = psql(gucs() + "\nEXPLAIN (ANALYZE, BUFFERS) " + READ_MERGE, db)
    res["plan"] = plan
    res["plan_parallel"] = any("Gather" in ln for ln in plan)

    # -- end to end: soup.merge + soup.export_safetensors
    out = os.path.join(OUT_DIR, "merged.safetensors")
    me, ex, tot = [], [], []
    while True:
        psql("DELETE FROM soup.models WHERE name = 'merged';", db)
        psql("VACUUM soup.chunks;\nCHECKPOINT;", db)
        rm(out)
        _, (t1, t2) = timed(gucs(), [
            "SELECT soup.merge('merged', 'avg', %s);" % MODEL_ARRAY,
            "SELECT soup.export_safetensors('merged', '%s');" % out], db)
        me.append(t1)
        ex.append(t2)
        tot.append(t1 + t2)
        if not keep_going(tot):
            break
    i = tot.index(min(tot))
    res["merge"], res["export_merged"], res["merge_export"] = me[i], ex[i], tot[i]
    res["merge_all"], res["export_merged_all"] = me, ex
    log("  chunk %d: merge %s | export merged %s" % (
        chunk, " ".join("%.2f" % t for t in me), " ".join("%.2f" % t for t in ex)))

    # -- correctness: exported merge vs numpy float64 average rounded to f32
    res["check"] = peer("check", "--merged", out, *FILES)
    rm(out)
    log("  chunk %d: check %s" % (chunk, json.dumps(res["check"])))

    # -- export alone (an imported model)
    out0 = os.path.join(OUT_DIR, "m0.safetensors")
    ex0 = []
    while True:
        rm(out0)
        _, (t,) = timed(gucs(), ["SELECT soup.export_safetensors('m0', '%s');" % out0], db)
        ex0.append(t)
        if not keep_going(ex0):
            break
    res["export"], res["export_all"] = min(ex0), ex0
    with open(out0, "rb") as a, open(FILES[0], "rb") as b:
        res["export_roundtrip_ok"] = os.path.getsize(out0) == os.path.getsize(FILES[0]) and \
            all(a.read(1 << 24) == b.read(1 << 24) for _ in range(os.path.getsize(out0) // (1 << 24) + 1))
    rm(out0)

    if do_configs:
        # the plan of the INSERT ... SELECT inside soup.merge, via auto_explain (rolled back)
        _, _, err = psql(gucs() + "\nLOAD 'auto_explain';\nSET auto_explain.log_min_duration = 0;\n"
                         "SET auto_explain.log_analyze = on;\nSET auto_explain.log_buffers = on;\n"
                         "SET auto_explain.log_nested_statements = on;\n"
                         "SET auto_explain.log_level = notice;\nSET client_min_messages = notice;\n"
                         "BEGIN;\nSELECT soup.merge('merged2', 'avg', %s);\nROLLBACK;"
                         % MODEL_ARRAY, db, want_stderr=True)
        blocks = ["NOTICE:" + b for b in err.split("NOTICE:")[1:]]
        res["merge_plan"] = [b for b in blocks if "avg_weights" in b and "INSERT" in b] or blocks[-1:]

        # parallel workers x OpenMP threads: read+merge, one session (fresh + warm run)
        cfg = []
        for label, kw in (("workers 0", {"workers": 0}),
                          ("workers 2, forced", {"workers": 2, "force_parallel": True})):
            for th in (1, 0):
                r = read_merge(db, info["numel"], max_sessions=1, warm_first=True, threads=th, **kw)
                p, _ = psql(gucs(threads=th, **kw) + "\nEXPLAIN " + READ_MERGE, db)
                cfg.append({"label": label, "threads": th, "fresh": r["fresh"], "warm": r["warm"],
                            "gather": any("Gather" in ln for ln in p)})
                log("  chunk %d: %s threads=%s read+merge fresh %.2f warm %s" % (
                    chunk, label, th or "auto", r["fresh"],
                    "%.2f" % r["warm"] if r["warm"] else "-"))
        res["configs"] = cfg
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


def fmt_s(t):
    return "%.2f s" % t if t >= 0.1 else "%.1f ms" % (t * 1e3)


def main():
    t_start = time.perf_counter()
    info = json.loads(os.environ["BENCH_GEN_INFO"])
    in_bytes = sum(os.path.getsize(f) for f in FILES)
    file_bytes = os.path.getsize(FILES[0])
    RAW["gen"] = info
    build = build_info()  # before the run: the tree may move on meanwhile
    busy_before = cpu_busy()
    with open("/proc/loadavg") as f:
        load_before = f.read().split()[0]

    log("memory-copy ceiling ...")
    mc = peer("memcpy", "--mb", "500", "--repeat", "3")
    RAW["memcpy"] = mc
    log("numpy peer ...")
    out = os.path.join(OUT_DIR, "numpy_avg.safetensors")
    np32 = peer("avg", "--acc", "f32", "--repeat", str(REPEAT), "--out", out, *FILES)
    np64 = peer("avg", "--acc", "f64", "--repeat", str(REPEAT), "--out", out, *FILES)
    RAW["numpy_f32"], RAW["numpy_f64"] = np32, np64
    log("  numpy f32 avg %.2f e2e %.2f | f64 avg %.2f e2e %.2f" % (
        np32["avg_seconds"], np32["e2e_seconds"], np64["avg_seconds"], np64["e2e_seconds"]))

    rows, _ = psql("LOAD 'pg_soup'; SELECT current_setting('soup.chunk_elems'), version(), "
                   "current_setting('max_parallel_workers_per_gather'), "
                   "current_setting('shared_buffers'), current_setting('fsync'), "
                   "current_setting('jit'), current_setting('soup.threads');")
    default_chunk, version, mpwg, sb, fsync, jit, sthreads = rows[0].split("|")
    default_chunk = int(default_chunk)
    chunks = sorted(set(CHUNKS) | {default_chunk})

    sweep = []
    for c in chunks:
        log("pg_soup, soup.chunk_elems = %d ..." % c)
        sweep.append(sweep_one(c, info, do_configs=(c == default_chunk)))
    RAW["sweep"] = sweep
    d = next(r for r in sweep if r["chunk_elems"] == default_chunk)

    # ---- the report
    L = []
    add = L.append
    add("pg_soup benchmark%s: %d x GPT-2-small-shaped f32 checkpoints, %s params, "
        "%.1f MB each, %.2f GB in" % (" (BENCH_QUICK: reduced size)" if QUICK else "",
                                      NFILES, format(info["numel"], ","), file_bytes / 1e6,
                                      gb(in_bytes)))
    add("machine: %d cores; %s; CPU busy before start %.0f%% (load avg %s)" % (
        os.cpu_count(), version.split(" on ")[0], 100 * busy_before, load_before))
    add("pg_soup: %s" % build)
    add("cluster: shared_buffers=%s, fsync=%s, jit=%s, soup.threads=%s (0 = one per core); "
        "conf: %s" % (sb, fsync, jit, sthreads, os.environ.get("BENCH_CONF", "")))
    add("best of up to %d runs (fewer when runs add up to > %.0f s); import runs once per "
        "chunk length; GB = 1e9 bytes; GB/s counts f32 input bytes" % (REPEAT, SLOW))
    add("")
    add("memory-copy ceiling (numpy copyto, 500 MB, best of 3): 1 thread %.1f GB/s, "
        "%d threads %.1f GB/s (bytes copied/s; traffic is 2x)"
        % (mc["gbps_1t"], mc["threads"], mc["gbps_mt"]))
    add("")
    add("headline at the default soup.chunk_elems = %d (%.1f MB f32 chunks), planner's plan "
        "(max_parallel_workers_per_gather=%s; Gather used: %s), soup.threads=%s:"
        % (default_chunk, default_chunk * 4 / 1e6, mpwg,
           "yes" if d["plan_parallel"] else "no", sthreads))
    w = [38, 22, 26, 12]
    add("  ".join(h.ljust(x) for h, x in zip(
        ["operation", "pg_soup", "numpy peer", "numpy/pg_soup (>1: pg_soup faster)"], w)).rstrip())
    add("  ".join("-" * x for x in w))

    def row(op, t_pg, bytes_, t_np=None, np_label=""):
        a = "%s  %.2f GB/s" % (fmt_s(t_pg), gb(bytes_) / t_pg) if t_pg else ""
        b = "%s %s" % (fmt_s(t_np), np_label) if t_np else ("-" if t_pg else "")
        r = "%.2f" % (t_np / t_pg) if (t_np and t_pg) else ("-" if t_pg else "")
        add("  ".join(x.ljust(n) for x, n in zip([op, a, b, r], w)).rstrip())

    rmg = d["read_merge"]
    row("read+merge, fresh session", rmg, in_bytes, np32["avg_seconds"], "(f32 acc)")
    row("", None, 0)
    L[-1] = "  ".join(x.ljust(n) for x, n in zip(
        ["", "", "%s (f64 acc)" % fmt_s(np64["avg_seconds"]),
         "%.2f" % (np64["avg_seconds"] / rmg)], w)).rstrip()
    if d["read_merge_warm"]:
        row("read+merge, 2nd run same session", d["read_merge_warm"], in_bytes,
            np32["avg_seconds"], "(f32 acc)")
    row("soup.merge (in-db result, committed)", d["merge"], in_bytes)
    row("merge + export", d["merge_export"], in_bytes, np32["e2e_seconds"], "(f32, avg+write)")
    L.append("  ".join(x.ljust(n) for x, n in zip(
        ["", "", "%s (f64, avg+write)" % fmt_s(np64["e2e_seconds"]),
         "%.2f" % (np64["e2e_seconds"] / d["merge_export"])], w)).rstrip())
    row("files in -> file out (import 4 +", d["import"] + d["merge_export"], in_bytes,
        np32["e2e_seconds"], "(f32, avg+write)")
    add("  merge + export)")
    row("import 4 files", d["import"], in_bytes)
    npw = max(np32["e2e_seconds"] - np32["avg_seconds"], 1e-6)
    row("export 1 model (m0, as imported)", d["export"], file_bytes, npw, "(write = e2e-avg)")
    row("export of the merged model", d["export_merged"], file_bytes)
    add("")
    kern = gb(in_bytes) / rmg
    add("merge kernel bandwidth: read+merge takes in %.2f GB/s of f32 = %.1f%% of the 1-thread "
        "copy ceiling (%.1f%% of the %d-thread one)" % (
            kern, 100 * kern / mc["gbps_1t"], 100 * kern / mc["gbps_mt"], mc["threads"]))
    if d["read_merge_warm"]:
        kw_ = gb(in_bytes) / d["read_merge_warm"]
        add("  warm session: %.2f GB/s = %.1f%% of 1-thread copy" % (kw_, 100 * kw_ / mc["gbps_1t"]))
    add("  numpy f32 script: %.2f GB/s = %.1f%%; numpy f64 script: %.2f GB/s = %.1f%%" % (
        gb(in_bytes) / np32["avg_seconds"], 100 * gb(in_bytes) / np32["avg_seconds"] / mc["gbps_1t"],
        gb(in_bytes) / np64["avg_seconds"], 100 * gb(in_bytes) / np64["avg_seconds"] / mc["gbps_1t"]))
    chk = d["check"]
    add("correctness (exported merge vs numpy float64 average rounded to f32): %s, "
        "%d of %d elements differ, max abs diff %g; export of m0 identical to its file: %s" % (
            "OK" if chk["ok"] and chk["n_diff"] == 0 else
            ("MISMATCH %s" % chk["problems"] if not chk["ok"] else "values differ"),
            chk["n_diff"], chk["numel"], chk["max_abs_diff"],
            "yes" if d["export_roundtrip_ok"] else "NO"))
    add("")
    add("chunk-length sweep (soup.chunk_elems; seconds, GB/s of f32 input in parentheses):")
    cw = [12, 6, 8, 7, 13, 13, 13, 7, 8, 9, 13, 6, 5]
    add("  ".join(h.ljust(x) for h, x in zip(
        ["chunk_elems", "MB", "rows/mdl", "stored", "import", "read+merge", "r+m warm",
         "merge", "exp.mrg", "merge+exp", "export m0", "vac", "check"], cw)).rstrip())
    add("  ".join("-" * x for x in cw))
    for r in sweep:
        c = r["check"]
        warm = r["read_merge_warm"]
        cells = ["%d%s" % (r["chunk_elems"], " *" if r["chunk_elems"] == default_chunk else ""),
                 "%.2f" % (r["chunk_elems"] * 4 / 1e6),
                 "%d" % r["rows_per_model"],
                 "%.3f" % (r["storage_bytes"] / in_bytes),
                 "%.2f (%.2f)" % (r["import"], gb(in_bytes) / r["import"]),
                 "%.2f (%.2f)" % (r["read_merge"], gb(in_bytes) / r["read_merge"]),
                 "%.2f (%.2f)" % (warm, gb(in_bytes) / warm) if warm else "-",
                 "%.2f" % r["merge"], "%.2f" % r["export_merged"], "%.2f" % r["merge_export"],
                 "%.2f (%.2f)" % (r["export"], gb(file_bytes) / r["export"]),
                 "%.0f" % r["vacuum_checkpoint"],
                 "ok" if c["ok"] and c["n_diff"] == 0 and r["export_roundtrip_ok"] else
                 "DIFF %d" % c["n_diff"]]
        add("  ".join(x.ljust(n) for x, n in zip(cells, cw)).rstrip())
    add("  * = current default.  MB = f32 chunk size.  stored = pg_total_relation_size(soup.chunks)"
        " / input bytes.  r+m warm = 2nd run in the same session.")
    add("  merge = soup.merge (writes the merged chunks); exp.mrg = export of it; vac = untimed "
        "VACUUM+CHECKPOINT after import (s); check = exported merge == numpy f64 reference and "
        "m0 export == its file")
    add("  runs: " + "; ".join("%d: r+m %d, merge %d" % (
        r["chunk_elems"], len(r["read_merge_all"]), len(r["merge_all"])) for r in sweep))
    fastest = lambda k: min(sweep, key=lambda r: r[k])["chunk_elems"]  # noqa: E731
    add("  fastest: read+merge at %d, merge+export at %d, import at %d, export at %d" % (
        fastest("read_merge"), fastest("merge_export"), fastest("import"), fastest("export")))
    if "configs" in d:
        add("")
        add("parallel workers x OpenMP threads (read+merge at chunk_elems %d, one session: "
            "fresh run, then warm run):" % default_chunk)
        for c in d["configs"]:
            add("  %-18s soup.threads=%-4s Gather in plan: %-3s  fresh %s (%.2f GB/s)  warm %s" % (
                c["label"], c["threads"] or "auto", "yes" if c["gather"] else "no",
                fmt_s(c["fresh"]), gb(in_bytes) / c["fresh"],
                "%s (%.2f GB/s)" % (fmt_s(c["warm"]), gb(in_bytes) / c["warm"]) if c["warm"] else "-"))
        add("  ('forced' = parallel_setup_cost = parallel_tuple_cost = 0, "
            "min_parallel_table_scan_size = 0)")
    add("")
    add("notes: numpy peer = memory-map the 4 files, copy the first state dict, add the others "
        "tensor by tensor, divide;")
    add("  f32 = running sum in float32 (the typical script); f64 = float64 sum rounded once "
        "(pg_soup's arithmetic); numpy runs on 1 core.")
    add("  Neither side fsyncs (cluster.sh runs fsync=off; numpy writes without fsync).  Input "
        "files are page-cached.  autovacuum=off: VACUUM (ANALYZE)")
    add("  + CHECKPOINT run untimed after each import and before each soup.merge.  Each "
        "measurement is a new psql session unless marked warm.")
    with open("/proc/loadavg") as f:
        load_after = " ".join(f.read().split()[:3])
    add("total benchmark wall time (after generation): %.0f s; load average at the end %s "
        "(other work on the machine is not excluded)" % (time.perf_counter() - t_start, load_after))

    report = "\n".join(L)
    print(report)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "last_run.txt"), "w") as f:
        f.write(report + "\n\n==== read+merge plan (default chunk length) ====\n")
        f.write("\n".join(d["plan"]) + "\n\n==== soup.merge INSERT plan (auto_explain) ====\n")
        f.write("\n".join(d.get("merge_plan", [])) + "\n")
        f.write("\n==== log ====\n" + "\n".join(LOG) + "\n")
        f.write("\n==== raw ====\n" + json.dumps(RAW, indent=1) + "\n")


if __name__ == "__main__":
    main()
