#!/usr/bin/env python3
"""Write GPT-2-small-shaped float32 checkpoints as .safetensors files.

Usage: gen_checkpoints.py OUTDIR N [--quick] [--seed S] [--fishers] [--base]

Writes OUTDIR/ckpt0.safetensors .. ckpt{N-1}.safetensors.  Checkpoint i is
filled with float32 standard normal values from np.random.default_rng(S + i),
so every run produces the same bytes.  Full size is GPT-2 small (124,439,808
parameters, ~498 MB per file); --quick writes a ~1/7-size variant (vocab
5000, 2 layers) for smoke tests.

--fishers also writes fisher0 .. fisher{N-1}.safetensors, diagonal Fisher
stand-ins for Fisher-weighted merging: the squares of float32 standard normal
values from default_rng(S + 500 + i) (positive, chi-squared with one degree
of freedom, like an average of squared gradients; about 0.08 % fall below
the 1e-6 floor of the merge and exercise it).  --base also writes
base.safetensors (default_rng(S + 1000)), the base model of model_stock.

The writer is the minimal safetensors format: 8-byte little-endian header
length, compact JSON header {"__metadata__":{"format":"pt"}, name: {dtype,
shape, data_offsets}, ...} padded with spaces to a multiple of 8, then the
tensors' bytes back to back in header order.
"""
import argparse
import json
import os
import sys
import time

import numpy as np


def gpt2_shapes(vocab=50257, n_ctx=1024, d=768, n_layer=12):
    """(name, shape) in the order of a GPT-2 state dict (HF Conv1D layout)."""
    out = [("wte.weight", (vocab, d)), ("wpe.weight", (n_ctx, d))]
    for i in range(n_layer):
        p = "h.%d." % i
        out += [
            (p + "ln_1.weight", (d,)), (p + "ln_1.bias", (d,)),
            (p + "attn.c_attn.weight", (d, 3 * d)), (p + "attn.c_attn.bias", (3 * d,)),
            (p + "attn.c_proj.weight", (d, d)), (p + "attn.c_proj.bias", (d,)),
            (p + "ln_2.weight", (d,)), (p + "ln_2.bias", (d,)),
            (p + "mlp.c_fc.weight", (d, 4 * d)), (p + "mlp.c_fc.bias", (4 * d,)),
            (p + "mlp.c_proj.weight", (4 * d, d)), (p + "mlp.c_proj.bias", (d,)),
        ]
    out += [("ln_f.weight", (d,)), ("ln_f.bias", (d,))]
    return out


def shapes_for(quick):
    return gpt2_shapes(vocab=5000, n_layer=2) if quick else gpt2_shapes()


def header_bytes(entries, metadata=None):
    """entries: list of (name, dtype_str, shape, nbytes) in data order."""
    hdr = {"__metadata__": metadata if metadata is not None else {"format": "pt"}}
    off = 0
    for name, dt, shape, nbytes in entries:
        hdr[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + nbytes]}
        off += nbytes
    js = json.dumps(hdr, separators=(",", ":")).encode("utf-8")
    js += b" " * (-len(js) % 8)
    return len(js).to_bytes(8, "little") + js


def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, float32 ndarray); written in that order."""
    entries = [(n, "F32", a.shape, a.nbytes) for n, a in tensors]
    with open(path, "wb") as f:
        f.write(header_bytes(entries, metadata))
        for _, a in tensors:
            f.write(np.ascontiguousarray(a, dtype="<f4").data)


def write_random_checkpoint(path, shapes, seed, square=False):
    rng = np.random.default_rng(seed)
    entries = [(n, "F32", s, 4 * int(np.prod(s))) for n, s in shapes]
    with open(path, "wb") as f:
        f.write(header_bytes(entries))
        for _, s in shapes:
            a = rng.standard_normal(s, dtype=np.float32)
            if square:
                np.square(a, out=a)
            f.write(a.data)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("n", type=int)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--fishers", action="store_true")
    ap.add_argument("--base", action="store_true")
    a = ap.parse_args(argv)
    shapes = shapes_for(a.quick)
    numel = sum(int(np.prod(s)) for _, s in shapes)
    todo = [("ckpt%d" % i, a.seed + i, False) for i in range(a.n)]
    if a.fishers:
        todo += [("fisher%d" % i, a.seed + 500 + i, True) for i in range(a.n)]
    if a.base:
        todo.append(("base", a.seed + 1000, False))
    t0 = time.perf_counter()
    for name, seed, square in todo:
        p = os.path.join(a.outdir, name + ".safetensors")
        write_random_checkpoint(p, shapes, seed, square)
        os.chmod(p, 0o644)
    dt = time.perf_counter() - t0
    print(json.dumps({"files": len(todo), "checkpoints": a.n, "fishers": a.fishers,
                      "base": a.base, "tensors": len(shapes), "numel": numel,
                      "file_bytes": os.path.getsize(os.path.join(a.outdir, "ckpt0.safetensors")),
                      "seconds": dt}))


if __name__ == "__main__":
    main(sys.argv[1:])
