#!/usr/bin/env python3
"""The numpy peer: what a user would write instead of pg_soup.

Subcommands (each prints one JSON object on stdout):

  memcpy [--mb 500] [--repeat 3]
      The memory-copy ceiling: np.copyto of a --mb MB float32 array into a
      pre-faulted destination, best of --repeat, on 1 thread and on one
      thread per core (numpy releases the GIL while copying).  GB/s counts
      bytes copied (memory traffic is twice that: read + write).

  merge --method avg|ema|fisher|model_stock [--acc f32|f64] [--decay D]
        [--fisher F ...] [--floor 1e-6] [--base B] [--repeat 3] [--slow S]
        [--out FILE] [--keep] FILES...
      Merge checkpoints as a script does: memory-map every file (no copy),
      then tensor by tensor:
        avg          copy the first, add the others, divide by the count
        ema          copy the first, then e = d e + (1 - d) x in file order
        fisher       sum_i F'_i x_i / sum_i F'_i, F'_i = max(F_i, floor)
                     (Matena & Raffel; the Fishers are files of their own)
        model_stock  per tensor: task vectors x_i - base, the mean pairwise
                     cosine c, t = N c / (1 + (N - 1) c), then
                     t * mean_i(x_i) + (1 - t) * base   (Jang et al. 2024)
      --acc f32 (the typical script) computes in float32 throughout; --acc
      f64 widens to float64, follows pg_soup's formulas (docs/merges.md) and
      rounds once to float32 at the end: it is also the reference of `check`.
      Times read+merge from page-cached files or, with --out,
      read+merge+write of a safetensors file (no fsync), --repeat times in
      this process (fewer once the runs add up to --slow seconds): "all" lists
      them, the first being a fresh process's.  numpy runs on one core.
      --keep leaves the last written file in place (for `check`).

  avg [--acc f32|f64] ... FILES...      the same as merge --method avg

  load [--repeat 3] FILES...
      Read whole files into memory (readinto a buffer, np.frombuffer views),
      as safetensors.numpy.load_file does: the peer of an import.

  write --out FILE [--repeat 3] SRC
      Write the tensors of SRC (already in memory) to a safetensors file:
      the peer of an export.

  check --method M [options as merge] --merged FILE [--merged FILE2 ...] FILES...
      Compare merged safetensors files against the --acc f64 merge of FILES
      rounded to float32: same tensor names, order, dtypes and shapes, and the
      count of elements whose bits differ, the max abs difference and the max
      distance in float32 units in the last place (ulp).  For model_stock the
      reference sums the Gram matrix with error-free transformations (the
      timed --acc f64 peer uses BLAS), as pg_soup's double-double sums do.
"""
import argparse
import json
import os
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_checkpoints import write_safetensors  # noqa: E402

DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16}
METHODS = ("avg", "ema", "fisher", "model_stock")


def read_header(path):
    """(header dict without __metadata__, offset of the data) of a safetensors file."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        hdr = json.loads(f.read(n))
    hdr.pop("__metadata__", None)
    return hdr, 8 + n


def load(path):
    """name -> read-only ndarray view of a memory-mapped safetensors file."""
    hdr, off = read_header(path)
    mm = np.memmap(path, dtype=np.uint8, mode="r", offset=off)
    sd = {}
    for name, t in hdr.items():
        b, e = t["data_offsets"]
        sd[name] = mm[b:e].view(DTYPES[t["dtype"]]).reshape(t["shape"])
    return sd


def load_into_memory(path):
    """name -> ndarray over one in-memory copy of the file (as safetensors.numpy.load_file;
    the buffer is a numpy array, so numpy asks for transparent huge pages)."""
    hdr, off = read_header(path)
    size = os.path.getsize(path)
    buf = np.empty(size - off, np.uint8)
    with open(path, "rb") as f:
        f.seek(off)
        f.readinto(buf)
    sd = {}
    for name, t in hdr.items():
        b, e = t["data_offsets"]
        dt = DTYPES[t["dtype"]]
        sd[name] = np.frombuffer(buf, dtype=dt, count=(e - b) // np.dtype(dt).itemsize,
                                 offset=b).reshape(t["shape"])
    return sd


# ------------------------------------------------------------- merges ----
# Each takes lists of memory-mapped state dicts and returns name -> float32
# array, in the order of the first file.

def avg_f32(sds, **_):
    """The typical script: running sum in float32, then divide."""
    out = {k: np.array(v) for k, v in sds[0].items()}
    for sd in sds[1:]:
        for k in out:
            out[k] += sd[k]
    for k in out:
        out[k] /= np.float32(len(sds))
    return out


def avg_f64(sds, **_):
    """Running sum in float64, one rounding to float32 at the end."""
    out = {k: v.astype(np.float64) for k, v in sds[0].items()}
    for sd in sds[1:]:
        for k in out:
            out[k] += sd[k]
    return {k: (v / len(sds)).astype(sds[0][k].dtype) for k, v in out.items()}


def ema_f32(sds, decay, **_):
    """e = d e + (1 - d) x in float32, in place (as torch/timm's ModelEmaV2)."""
    d, c = np.float32(decay), np.float32(1.0 - decay)
    out = {k: np.array(v) for k, v in sds[0].items()}
    for sd in sds[1:]:
        for k, e in out.items():
            e *= d
            e += c * sd[k]
    return out


def ema_f64(sds, decay, **_):
    """pg_soup's soup.ema: e kept in float64, e = d*e + (1-d)*x, rounded once at the end."""
    d, c = float(decay), 1.0 - float(decay)
    out = {k: v.astype(np.float64) for k, v in sds[0].items()}
    for sd in sds[1:]:
        for k, e in out.items():
            e *= d
            e += c * sd[k].astype(np.float64)
    return {k: v.astype(sds[0][k].dtype) for k, v in out.items()}


def fisher_f32(sds, fishers, floor, **_):
    """sum F' x / sum F' in float32 (mmatena/model_merging works in float32)."""
    fl = np.float32(floor)
    out = {}
    for k in sds[0]:
        num = den = None
        for sd, fd in zip(sds, fishers):
            f = np.maximum(fd[k], fl)
            if num is None:
                num, den = f * sd[k], f
            else:
                num += f * sd[k]
                den += f
        num /= den
        out[k] = num
    return out


def fisher_f64(sds, fishers, floor, **_):
    """pg_soup's soup.fisher_merge (weights 1): float64 products and sums, one division."""
    out = {}
    for k in sds[0]:
        num = np.zeros(sds[0][k].shape, np.float64)
        den = np.zeros(sds[0][k].shape, np.float64)
        for sd, fd in zip(sds, fishers):
            f = np.maximum(fd[k].astype(np.float64), floor)
            num += f * sd[k]
            den += f
        out[k] = (num / den).astype(sds[0][k].dtype)
    return out


def stock_ratio(g, n):
    """model_stock's t from the Gram matrix of the task vectors (soup.model_stock_ratio)."""
    c = 0.0
    for i in range(n - 1):
        for j in range(i + 1, n):
            if g[i, i] > 0 and g[j, j] > 0:
                c += g[i, j] / np.sqrt(g[i, i] * g[j, j])
    c /= n * (n - 1) / 2
    return n * c / (1 + (n - 1) * c)


def model_stock_f32(sds, base, **_):
    """As mergekit's model_stock: float32 task vectors, cosines of whole tensors."""
    n = len(sds)
    out = {}
    for k, b in base.items():
        taus = [(sd[k] - b).ravel() for sd in sds]
        norms = [float(np.linalg.norm(t)) for t in taus]
        c = 0.0
        for i in range(n - 1):
            for j in range(i + 1, n):
                if norms[i] > 0 and norms[j] > 0:
                    c += float(np.dot(taus[i], taus[j])) / (norms[i] * norms[j])
        c /= n * (n - 1) / 2
        t = np.float32(n * c / (1 + (n - 1) * c))
        mean = np.array(sds[0][k])
        for sd in sds[1:]:
            mean += sd[k]
        mean /= np.float32(n)
        mean *= t
        mean += (np.float32(1) - t) * b
        out[k] = mean
    return out


GRAM_BLOCK = 1 << 22


def cascade_sums(p):
    """Row sums of the float64 matrix p, correctly rounded but for
    astronomically rare ties: a pairwise tree of error-free additions
    (TwoSum) whose rounding errors are collected and added back at the end."""
    p = np.asarray(p, dtype=np.float64)
    errs = np.zeros(p.shape[0])
    bb = np.empty_like(p[:, :(p.shape[1] + 1) // 2])
    t = np.empty_like(bb)
    while p.shape[1] > 1:
        if p.shape[1] % 2:
            p = np.concatenate([p, np.zeros((p.shape[0], 1))], axis=1)
        h = p.shape[1] // 2
        a, b = p[:, :h], p[:, h:]
        s = a + b                      # the new level; a and b are not needed after
        bv, tv = bb[:, :h], t[:, :h]
        np.subtract(s, a, out=bv)      # bb = s - a
        np.subtract(s, bv, out=tv)     # s - bb
        np.subtract(a, tv, out=tv)     # a - (s - bb)
        np.subtract(b, bv, out=bv)     # b - bb
        tv += bv
        errs += tv.sum(axis=1)
        p = s
    return p[:, 0], errs


def model_stock_f64(sds, base, exact_gram=False, **_):
    """pg_soup's model_stock: float64 Gram matrix of the task vectors (summed in
    blocks of 4M elements), t as soup.model_stock_ratio, then
    base + (t / N) sum_i (x_i - base) rounded once.  The timed peer sums the
    Gram matrix with BLAS (dgemm); exact_gram (the reference of `check`)
    rounds each product x_i x_j to float64 and sums them as exactly as
    pg_soup's double-double sums do, so that t has the same bits."""
    n = len(sds)
    iu = np.triu_indices(n)
    out = {}
    for k, b in base.items():
        bf = b.ravel()
        xs = [sd[k].ravel() for sd in sds]
        g = np.zeros((n, n))
        hi_parts, err_parts = [], []
        s = np.zeros(bf.size, np.float64)
        for lo in range(0, bf.size, GRAM_BLOCK):
            hi = min(lo + GRAM_BLOCK, bf.size)
            b64 = bf[lo:hi].astype(np.float64)
            taus = np.empty((n, hi - lo))
            for i, x in enumerate(xs):
                np.subtract(x[lo:hi], b64, out=taus[i])
            if exact_gram:
                h, e = cascade_sums(taus[iu[0]] * taus[iu[1]])
                hi_parts.append(h)
                err_parts.append(e)
            else:
                g += taus @ taus.T
            s[lo:hi] = taus.sum(axis=0)
        if exact_gram:
            import math
            for m, (i, j) in enumerate(zip(*iu)):
                g[i, j] = g[j, i] = math.fsum([h[m] for h in hi_parts] + [e[m] for e in err_parts])
        lam = stock_ratio(g, n) / n
        out[k] = (bf + lam * s).astype(b.dtype).reshape(b.shape)
    return out


MERGES = {("avg", "f32"): avg_f32, ("avg", "f64"): avg_f64,
          ("ema", "f32"): ema_f32, ("ema", "f64"): ema_f64,
          ("fisher", "f32"): fisher_f32, ("fisher", "f64"): fisher_f64,
          ("model_stock", "f32"): model_stock_f32, ("model_stock", "f64"): model_stock_f64}


def merge_files(a, acc=None, exact=False):
    """Memory-map the inputs and merge them; name -> float32 array."""
    sds = [load(p) for p in a.files]
    kw = {"decay": a.decay, "floor": a.floor}
    if exact and a.method == "model_stock":
        kw["exact_gram"] = True
    if a.method == "fisher":
        if len(a.fishers or []) != len(a.files):
            raise SystemExit("fisher: one --fisher file per model")
        kw["fishers"] = [load(p) for p in a.fishers]
    if a.method == "model_stock":
        if not a.base:
            raise SystemExit("model_stock: --base is required")
        kw["base"] = load(a.base)
    return MERGES[(a.method, acc or a.acc)](sds, **kw)


def input_files(a):
    return list(a.files) + list(a.fishers or []) + ([a.base] if a.base else [])


# ----------------------------------------------------------- commands ----

def best(fn, repeat, before=None, slow=float("inf")):
    times = []
    for _ in range(repeat):
        if before:
            before()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if sum(times) >= slow:
            break
    return min(times), times


def cmd_memcpy(a):
    n = a.mb * 1000 * 1000 // 4
    src = np.random.default_rng(0).standard_normal(n, dtype=np.float32)
    dst = np.empty_like(src)
    np.copyto(dst, src)  # fault the destination in
    one, _ = best(lambda: np.copyto(dst, src), a.repeat)

    nt = os.cpu_count() or 1
    bounds = [n * i // nt for i in range(nt + 1)]

    def par():
        ts = [threading.Thread(target=np.copyto, args=(dst[b:e], src[b:e]))
              for b, e in zip(bounds, bounds[1:])]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    par()
    multi, _ = best(par, a.repeat)
    nbytes = src.nbytes
    print(json.dumps({"bytes": nbytes, "threads": nt,
                      "seconds_1t": one, "gbps_1t": nbytes / one / 1e9,
                      "seconds_mt": multi, "gbps_mt": nbytes / multi / 1e9}))


def cmd_merge(a):
    res = {"method": a.method, "acc": a.acc, "files": len(a.files),
           "input_bytes": sum(os.path.getsize(p) for p in input_files(a))}
    # one mode per process: read+merge, or with --out read+merge+write; the
    # first run is a fresh process's (what running the script once costs),
    # later runs reuse the process's memory
    if a.out:
        def rm():
            if os.path.exists(a.out):
                os.unlink(a.out)

        def run():
            write_safetensors(a.out, list(merge_files(a).items()))
        res["mode"] = "e2e"
        res["seconds"], res["all"] = best(run, a.repeat, rm, slow=a.slow)
        res["out_bytes"] = os.path.getsize(a.out)
        if not a.keep:
            rm()
    else:
        res["mode"] = "merge"
        res["seconds"], res["all"] = best(lambda: merge_files(a), a.repeat, slow=a.slow)
    print(json.dumps(res))


def cmd_load(a):
    res = {"files": len(a.files), "input_bytes": sum(os.path.getsize(p) for p in a.files)}
    res["seconds"], res["all"] = best(lambda: [load_into_memory(p) for p in a.files],
                                      a.repeat, slow=a.slow)
    print(json.dumps(res))


def cmd_write(a):
    sd = {k: np.array(v) for k, v in load(a.src).items()}
    items = list(sd.items())

    def rm():
        if os.path.exists(a.out):
            os.unlink(a.out)
    res = {}
    res["seconds"], res["all"] = best(lambda: write_safetensors(a.out, items), a.repeat, rm,
                                      slow=a.slow)
    res["out_bytes"] = os.path.getsize(a.out)
    with open(a.out, "rb") as f, open(a.src, "rb") as g:
        res["identical"] = f.read() == g.read()
    rm()
    print(json.dumps(res))


def ordered(a):
    """float32 bits as integers ordered like the values (adjacent floats differ by 1)."""
    i = a.view(np.int32).astype(np.int64)
    return np.where(i < 0, -(i & 0x7FFFFFFF), i)


def compare(ref, path):
    got = load(path)
    res = {"file": os.path.basename(path), "ok": True, "tensors": len(ref), "numel": 0,
           "max_abs_diff": 0.0, "max_ulp": 0, "n_diff": 0, "problems": []}
    if list(got) != list(ref):
        res["ok"] = False
        res["problems"].append("tensor names or order differ")
    for k, r in ref.items():
        g = got.get(k)
        if g is None or g.dtype != r.dtype or g.shape != r.shape:
            res["ok"] = False
            res["problems"].append("%s: %s/%s vs %s/%s" % (
                k, None if g is None else g.dtype, None if g is None else g.shape,
                r.dtype, r.shape))
            continue
        res["numel"] += r.size
        ne = np.count_nonzero(g.view(np.uint32) != r.view(np.uint32))
        if ne:
            res["n_diff"] += int(ne)
            d = float(np.nanmax(np.abs(g.astype(np.float64) - r.astype(np.float64))))
            res["max_abs_diff"] = max(res["max_abs_diff"], d)
            if g.dtype == np.float32:
                u = int(np.max(np.abs(ordered(g) - ordered(r))))
                res["max_ulp"] = max(res["max_ulp"], u)
    res["problems"] = res["problems"][:10]
    return res


def cmd_check(a):
    ref = merge_files(a, acc="f64", exact=True)
    out = [compare(ref, p) for p in a.merged]
    print(json.dumps(out[0] if len(out) == 1 else {"results": out}))


def add_merge_args(p, method=True):
    if method:
        p.add_argument("--method", choices=METHODS, required=True)
    p.add_argument("--acc", choices=["f32", "f64"], default="f32")
    p.add_argument("--decay", type=float, default=0.9)
    p.add_argument("--floor", type=float, default=1e-6)
    p.add_argument("--fisher", dest="fishers", action="append",
                   help="a Fisher file, once per model, in the models' order")
    p.add_argument("--base")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--slow", type=float, default=float("inf"))
    p.add_argument("files", nargs="+")


def main(argv):
    ap = argparse.ArgumentParser(description="numpy peer for the pg_soup benchmark")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("memcpy")
    p.add_argument("--mb", type=int, default=500)
    p.add_argument("--repeat", type=int, default=3)
    for name in ("merge", "avg"):
        p = sub.add_parser(name)
        add_merge_args(p, method=(name == "merge"))
        p.add_argument("--out")
        p.add_argument("--keep", action="store_true")
    p = sub.add_parser("load")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--slow", type=float, default=float("inf"))
    p.add_argument("files", nargs="+")
    p = sub.add_parser("write")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--slow", type=float, default=float("inf"))
    p.add_argument("--out", required=True)
    p.add_argument("src")
    p = sub.add_parser("check")
    add_merge_args(p)
    p.add_argument("--merged", required=True, action="append")
    a = ap.parse_args(argv)
    if a.cmd == "avg":
        a.method = "avg"
    {"memcpy": cmd_memcpy, "merge": cmd_merge, "avg": cmd_merge, "load": cmd_load,
     "write": cmd_write, "check": cmd_check}[a.cmd](a)


if __name__ == "__main__":
    main(sys.argv[1:])
