#!/usr/bin/python3
"""A large f32 checkpoint for the crash test: gen_big.py PATH [MB]."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import st  # noqa: E402

mb = int(sys.argv[2]) if len(sys.argv) > 2 else 200
n = mb * 1024 * 1024 // 4 // 8
rng = np.random.default_rng(1)
st.write(sys.argv[1], [("layer.%d.weight" % i, "F32", [n], rng.standard_normal(n, dtype=np.float32).tobytes())
                       for i in range(8)], {"format": "pt"})
