#!/usr/bin/python3
"""Demo data: three fine-tuned checkpoints of one small MLP, and a check.

    demo_checkpoints.py make DIR      write DIR/ckpt-{100,200,300}.safetensors
    demo_checkpoints.py check DIR FILE  compare FILE with numpy's average
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402

SHAPES = [("embed.weight", [1000, 64]), ("mlp.fc1.weight", [256, 64]), ("mlp.fc1.bias", [256]),
          ("mlp.fc2.weight", [64, 256]), ("mlp.fc2.bias", [64]), ("head.weight", [10, 64])]
STEPS = [100, 200, 300]


def make(d):
    rng = np.random.default_rng(7)
    base = {name: rng.standard_normal(shape).astype(np.float32) * 0.05 for name, shape in SHAPES}
    for step in STEPS:
        tensors = [(name, "F32", shape,
                    (base[name] + rng.standard_normal(shape).astype(np.float32) * 0.01).tobytes())
                   for name, shape in SHAPES]
        tensors.append(("position_ids", "I64", [1, 64], np.arange(64, dtype="<i8").tobytes()))
        st.write(os.path.join(d, "ckpt-%d.safetensors" % step), tensors, {"format": "pt"})


def check(d, merged):
    _, out = st.read(merged)
    worst = 0.0
    identical = True
    for name, _ in SHAPES:
        ref = sum(st.array(st.read(os.path.join(d, "ckpt-%d.safetensors" % s))[1][name]).astype(np.float64)
                  for s in STEPS) / len(STEPS)
        got = st.array(out[name]).astype(np.float64)
        worst = max(worst, float(np.max(np.abs(got - ref))))
        identical &= bool(np.array_equal(got.astype(np.float32), ref.astype(np.float32)))
    print("numpy check of %s: %d tensors, max |pg_soup - numpy float64 mean| = %.3g, "
          "equal to numpy's mean rounded to float32: %s"
          % (os.path.basename(merged), len(out), worst, "yes" if identical else "NO"))
    return 0 if identical else 1


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2])
    else:
        sys.exit(check(sys.argv[2], sys.argv[3]))
