#!/usr/bin/env python3
"""The numpy peer: what a user would write instead of pg_soup.

Subcommands (each prints one JSON object on stdout):

  memcpy [--mb 500] [--repeat 3]
      The memory-copy ceiling: np.copyto of a --mb MB float32 array into a
      pre-faulted destination, best of --repeat, on 1 thread and on one
      thread per core (numpy releases the GIL while copying).  GB/s counts
      bytes copied (memory traffic is twice that: read + write).

  avg [--acc f32|f64] [--repeat 3] [--out FILE] FILES...
      Average checkpoints as a typical script does: memory-map every file,
      copy the first state dict as the accumulator, add the others tensor by
      tensor, divide by the count.  --acc f32 (the typical script) keeps the
      running sum in float32; --acc f64 accumulates in float64 and rounds
      once at the end (pg_soup's arithmetic).  Times (a) read+average from
      page-cached files and, with --out, (b) read+average+write a safetensors
      file (no fsync).  Best of --repeat.  numpy runs on one core.

  check --merged FILE FILES...
      Compare a merged safetensors file against the float64-accumulated
      average of FILES rounded to float32: same tensor names, order, dtypes
      and shapes, and the max abs difference / count of differing elements.
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


def load(path):
    """name -> read-only ndarray view of a memory-mapped safetensors file."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        hdr = json.loads(f.read(n))
    hdr.pop("__metadata__", None)
    mm = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
    sd = {}
    for name, t in hdr.items():
        b, e = t["data_offsets"]
        sd[name] = mm[b:e].view(DTYPES[t["dtype"]]).reshape(t["shape"])
    return sd


def average_f32(paths):
    """The typical script: running sum in float32, then divide."""
    sds = [load(p) for p in paths]
    avg = {k: np.array(v) for k, v in sds[0].items()}
    for sd in sds[1:]:
        for k in avg:
            avg[k] += sd[k]
    for k in avg:
        avg[k] /= np.float32(len(sds))
    return avg


def average_f64(paths):
    """Running sum in float64, one rounding to float32 at the end."""
    sds = [load(p) for p in paths]
    avg = {k: v.astype(np.float64) for k, v in sds[0].items()}
    for sd in sds[1:]:
        for k in avg:
            avg[k] += sd[k]
    return {k: (v / len(sds)).astype(sds[0][k].dtype) for k, v in avg.items()}


def best(fn, repeat, before=None):
    times = []
    for _ in range(repeat):
        if before:
            before()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
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


def cmd_avg(a):
    fn = average_f32 if a.acc == "f32" else average_f64
    res = {"acc": a.acc, "files": len(a.files),
           "input_bytes": sum(os.path.getsize(p) for p in a.files)}
    fn(a.files)  # warm the page cache
    res["avg_seconds"], res["avg_all"] = best(lambda: fn(a.files), a.repeat)
    if a.out:
        def rm():
            if os.path.exists(a.out):
                os.unlink(a.out)

        def e2e():
            avg = fn(a.files)
            write_safetensors(a.out, list(avg.items()))
        res["e2e_seconds"], res["e2e_all"] = best(e2e, a.repeat, rm)
        res["out_bytes"] = os.path.getsize(a.out)
        rm()
    print(json.dumps(res))


def cmd_check(a):
    ref = average_f64(a.files)
    got = load(a.merged)
    res = {"ok": True, "tensors": len(ref), "numel": 0, "max_abs_diff": 0.0,
           "n_diff": 0, "problems": []}
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
            d = float(np.max(np.abs(g.astype(np.float64) - r.astype(np.float64))))
            res["max_abs_diff"] = max(res["max_abs_diff"], d)
    res["problems"] = res["problems"][:10]
    print(json.dumps(res))


def main(argv):
    ap = argparse.ArgumentParser(description="numpy peer for the pg_soup benchmark")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("memcpy")
    p.add_argument("--mb", type=int, default=500)
    p.add_argument("--repeat", type=int, default=3)
    p = sub.add_parser("avg")
    p.add_argument("--acc", choices=["f32", "f64"], default="f32")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--out")
    p.add_argument("files", nargs="+")
    p = sub.add_parser("check")
    p.add_argument("--merged", required=True)
    p.add_argument("files", nargs="+")
    a = ap.parse_args(argv)
    {"memcpy": cmd_memcpy, "avg": cmd_avg, "check": cmd_check}[a.cmd](a)


if __name__ == "__main__":
    main(sys.argv[1:])
