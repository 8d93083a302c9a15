#!/usr/bin/env python3
"""The PyTorch peer: the same merges as numpy_peer.py, written with torch
(Debian's python3-torch; safetensors' own Python package is not in Debian, so
the files are read as safetensors.torch does it: memory-map the file and
wrap each tensor's bytes with torch.frombuffer, no copy).

Subcommands (each prints one JSON object on stdout):

  merge --method avg|ema|fisher|model_stock [--acc f32|f64] [--decay D]
        [--fisher F ...] [--floor 1e-6] [--base B] [--repeat 3] [--slow S]
        [--out FILE] [--keep] [--threads N] FILES...
      Tensor by tensor, with in-place torch ops as a training script would:
        avg          acc = x_0.clone(); acc.add_(x_i) ...; acc.div_(N)
        ema          e = x_0.clone(); e.mul_(d).add_(x_i, alpha=1-d) (timm ModelEmaV2)
        fisher       F' = F.clamp_min(floor); num.addcmul_(F', x); den.add_(F'); num / den
        model_stock  as mergekit's model_stock: task vectors x_i - base,
                     torch.nn.functional.cosine_similarity of each pair of
                     flattened task vectors, mean c, t = N c / (1 + (N - 1) c),
                     t * mean_i(x_i) + (1 - t) * base
      --acc f32 (default, what a user writes) computes in float32; f64 casts
      each input tensor with .double() and rounds to float32 at the end.
      Times read+merge or, with --out, read+merge+write (the header, then
      each tensor's .numpy() buffer; no fsync), --repeat times in this
      process: "all" lists them, the first being a fresh process's.

  load [--repeat 3] FILES...
      Read whole files into memory and wrap them with torch.frombuffer (as
      safetensors.torch.load_file): the peer of an import.

  write --out FILE [--repeat 3] SRC
      Write the tensors of SRC (in memory) to a safetensors file.

torch runs with its default intra-op thread count unless --threads is given;
the count used is in the output ("threads").
"""
import argparse
import json
import mmap
import os
import sys
import time
import warnings

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_checkpoints import header_bytes  # noqa: E402
from numpy_peer import best, read_header  # noqa: E402

# frombuffer over a read-only mmap warns that the buffer is not writable;
# the views are only read.
warnings.filterwarnings("ignore", message="The given buffer is not writable")

DTYPES = {"F32": torch.float32, "F64": torch.float64, "F16": torch.float16,
          "BF16": torch.bfloat16}
ST_NAMES = {v: k for k, v in DTYPES.items()}
METHODS = ("avg", "ema", "fisher", "model_stock")


def load(path):
    """name -> torch tensor viewing a memory-mapped safetensors file."""
    hdr, off = read_header(path)
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    sd = {}
    for name, t in hdr.items():
        b, e = t["data_offsets"]
        dt = DTYPES[t["dtype"]]
        n = (e - b) // torch.empty((), dtype=dt).element_size()
        sd[name] = torch.frombuffer(mm, dtype=dt, count=n, offset=off + b).reshape(t["shape"])
    return sd


def load_into_memory(path):
    """name -> tensor over one in-memory copy of the file (safetensors.torch.load_file)."""
    hdr, off = read_header(path)
    buf = bytearray(os.path.getsize(path) - off)
    with open(path, "rb") as f:
        f.seek(off)
        f.readinto(buf)
    sd = {}
    for name, t in hdr.items():
        b, e = t["data_offsets"]
        dt = DTYPES[t["dtype"]]
        n = (e - b) // torch.empty((), dtype=dt).element_size()
        sd[name] = torch.frombuffer(buf, dtype=dt, count=n, offset=b).reshape(t["shape"])
    return sd


def save(path, items):
    """Write (name, tensor) pairs as a safetensors file."""
    entries = [(n, ST_NAMES[t.dtype], tuple(t.shape), t.numel() * t.element_size())
               for n, t in items]
    with open(path, "wb") as f:
        f.write(header_bytes(entries))
        for _, t in items:
            f.write(t.contiguous().numpy().data)


# ------------------------------------------------------------- merges ----

def avg(sds, cast, **_):
    out = {}
    for k in sds[0]:
        acc = cast(sds[0][k]).clone()
        for sd in sds[1:]:
            acc.add_(cast(sd[k]))
        out[k] = acc.div_(len(sds))
    return out


def ema(sds, cast, decay, **_):
    out = {}
    for k in sds[0]:
        e = cast(sds[0][k]).clone()
        for sd in sds[1:]:
            e.mul_(decay).add_(cast(sd[k]), alpha=1.0 - decay)
        out[k] = e
    return out


def fisher(sds, cast, fishers, floor, **_):
    out = {}
    for k in sds[0]:
        num = den = None
        for sd, fd in zip(sds, fishers):
            f = cast(fd[k]).clamp_min(floor)
            if num is None:
                num, den = f * cast(sd[k]), f
            else:
                num.addcmul_(f, cast(sd[k]))
                den.add_(f)
        out[k] = num.div_(den)
    return out


def model_stock(sds, cast, base, **_):
    n = len(sds)
    out = {}
    for k in sds[0]:
        w0 = cast(base[k])
        ws = [cast(sd[k]) for sd in sds]
        taus = [(w - w0).flatten() for w in ws]
        cos = []
        for i in range(n - 1):
            for j in range(i + 1, n):
                cos.append(torch.nn.functional.cosine_similarity(taus[i], taus[j], dim=0))
        c = float(torch.stack(cos).mean())
        t = n * c / (1 + (n - 1) * c)
        avg_ = ws[0].clone()
        for w in ws[1:]:
            avg_.add_(w)
        avg_.div_(n)
        out[k] = avg_.mul_(t).add_(w0, alpha=1.0 - t)
    return out


MERGES = {"avg": avg, "ema": ema, "fisher": fisher, "model_stock": model_stock}


def merge_files(a):
    sds = [load(p) for p in a.files]
    if a.acc == "f64":
        def cast(t):
            return t.double()
    else:
        def cast(t):
            return t
    kw = {"decay": a.decay, "floor": a.floor}
    if a.method == "fisher":
        if len(a.fishers or []) != len(a.files):
            raise SystemExit("fisher: one --fisher file per model")
        kw["fishers"] = [load(p) for p in a.fishers]
    if a.method == "model_stock":
        if not a.base:
            raise SystemExit("model_stock: --base is required")
        kw["base"] = load(a.base)
    out = MERGES[a.method](sds, cast, **kw)
    if a.acc == "f64":
        out = {k: v.to(sds[0][k].dtype) for k, v in out.items()}
    return out


def cmd_merge(a):
    files = list(a.files) + list(a.fishers or []) + ([a.base] if a.base else [])
    res = {"method": a.method, "acc": a.acc, "files": len(a.files),
           "threads": torch.get_num_threads(), "torch": torch.__version__,
           "input_bytes": sum(os.path.getsize(p) for p in files)}
    # one mode per process: read+merge, or with --out read+merge+write; the
    # first run is a fresh process's (what running the script once costs),
    # later runs reuse the process's memory
    if a.out:
        def rm():
            if os.path.exists(a.out):
                os.unlink(a.out)

        def run():
            save(a.out, list(merge_files(a).items()))
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
    res = {"files": len(a.files), "threads": torch.get_num_threads(),
           "input_bytes": sum(os.path.getsize(p) for p in a.files)}
    res["seconds"], res["all"] = best(lambda: [load_into_memory(p) for p in a.files],
                                      a.repeat, slow=a.slow)
    print(json.dumps(res))


def cmd_write(a):
    items = [(k, v.clone()) for k, v in load(a.src).items()]

    def rm():
        if os.path.exists(a.out):
            os.unlink(a.out)
    res = {"threads": torch.get_num_threads()}
    res["seconds"], res["all"] = best(lambda: save(a.out, items), a.repeat, rm, slow=a.slow)
    res["out_bytes"] = os.path.getsize(a.out)
    with open(a.out, "rb") as f, open(a.src, "rb") as g:
        res["identical"] = f.read() == g.read()
    rm()
    print(json.dumps(res))


def main(argv):
    ap = argparse.ArgumentParser(description="PyTorch peer for the pg_soup benchmark")
    ap.add_argument("--threads", type=int)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("merge")
    p.add_argument("--method", choices=METHODS, required=True)
    p.add_argument("--acc", choices=["f32", "f64"], default="f32")
    p.add_argument("--decay", type=float, default=0.9)
    p.add_argument("--floor", type=float, default=1e-6)
    p.add_argument("--fisher", dest="fishers", action="append")
    p.add_argument("--base")
    p.add_argument("--out")
    p.add_argument("--keep", action="store_true")
    for p in (p, sub.add_parser("load"), sub.add_parser("write")):
        p.add_argument("--repeat", type=int, default=3)
        p.add_argument("--slow", type=float, default=float("inf"))
    sub.choices["write"].add_argument("--out", required=True)
    sub.choices["write"].add_argument("src")
    sub.choices["merge"].add_argument("files", nargs="+")
    sub.choices["load"].add_argument("files", nargs="+")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    {"merge": cmd_merge, "load": cmd_load, "write": cmd_write}[a.cmd](a)


if __name__ == "__main__":
    main(sys.argv[1:])
