"""A stand-in evaluation for greedy-soup tests: reads a safetensors file
(F32 and BF16 tensors) and prints a score that is higher the closer every
element is to a target: a number, or the same tensor of another
safetensors file (the negated sum of squared distances)."""
import json
import os
import struct
import sys

import numpy as np


def tensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        raw = data[t["data_offsets"][0]:t["data_offsets"][1]]
        if t["dtype"] == "BF16":
            out[name] = (np.frombuffer(raw, "<u2").astype("<u4") << 16).view("<f4").astype(np.float64)
        elif t["dtype"] == "F32":
            out[name] = np.frombuffer(raw, "<f4").astype(np.float64)
    return out


soup = tensors(sys.argv[1])
target = sys.argv[2] if len(sys.argv) > 2 else "0"
ref = tensors(target) if os.path.exists(target) else None
total = 0.0
for name, x in soup.items():
    goal = ref[name] if ref is not None else float(target)
    total += float(np.sum((x - goal) ** 2))
print("evaluating %s" % sys.argv[1])
print("score: %.17g" % -total)
