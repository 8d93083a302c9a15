#!/usr/bin/python3
"""Write the files the regression tests read into one fixed directory.

    gen_test_data.py OUT FIXTURES

OUT/fixtures  a copy of the shared safetensors fixtures (real files written
              by other tools: the references for round trips)
OUT/bad       malformed safetensors files, index files and COPY BINARY files,
              each breaking exactly one rule
OUT/gen       small well-formed checkpoints written here, independently of
              pg_soup, with their expected merges computed by numpy
OUT/out       where the server writes exports (made writable by the caller)
"""
import json
import os
import shutil
import struct
import sys

import numpy as np


def st_bytes(header, data=b"", raw_header=None, length=None):
    """A safetensors file from a header dict (or raw header bytes)."""
    h = raw_header if raw_header is not None else json.dumps(
        header, separators=(",", ":")).encode()
    n = len(h) if length is None else length
    return struct.pack("<Q", n) + h + data


def write(path, blob):
    with open(path, "wb") as f:
        f.write(blob)


def tensor(dtype, shape, begin, end):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def bad_safetensors(d):
    ok = {"a": tensor("F32", [2], 0, 8)}
    data = b"\0" * 8
    files = {
        "empty.safetensors": b"",
        "short_length.safetensors": b"\x05\0\0\0\0",
        "header_past_end.safetensors": st_bytes(ok, data, length=1000),
        "header_absurd.safetensors": st_bytes(ok, data, length=1 << 40),
        "header_over_limit.safetensors": st_bytes(ok, data, length=100_000_001),
        "bad_json.safetensors": st_bytes(None, data, raw_header=b'{"a":{"dtype":"F32",'),
        "invalid_utf8.safetensors": st_bytes(
            None, data, raw_header=b'{"\xff\xfe":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'),
        "nul_in_header.safetensors": st_bytes(
            None, data, raw_header=b'{"a\\u0000":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'),
        "top_level_array.safetensors": st_bytes([1, 2], data),
        "tensor_not_object.safetensors": st_bytes({"a": [1]}, data),
        "unknown_dtype.safetensors": st_bytes({"a": tensor("F33", [2], 0, 8)}, data),
        "subbyte_dtype.safetensors": st_bytes({"a": tensor("F4", [2], 0, 1)}, b"\0"),
        "negative_dim.safetensors": st_bytes({"a": tensor("F32", [-2], 0, 8)}, data),
        "fractional_dim.safetensors": st_bytes({"a": tensor("F32", [2.5], 0, 8)}, data),
        "shape_overflow.safetensors": st_bytes(
            {"a": tensor("F32", [1 << 40, 1 << 40], 0, 8)}, data),
        "missing_offsets.safetensors": st_bytes({"a": {"dtype": "F32", "shape": [2]}}, data),
        "offsets_gap.safetensors": st_bytes(
            {"a": tensor("F32", [1], 0, 4), "b": tensor("F32", [1], 8, 12)}, b"\0" * 12),
        "offsets_overlap.safetensors": st_bytes(
            {"a": tensor("F32", [2], 0, 8), "b": tensor("F32", [2], 4, 12)}, b"\0" * 12),
        "offsets_not_from_zero.safetensors": st_bytes({"a": tensor("F32", [2], 4, 12)}, b"\0" * 12),
        "size_mismatch.safetensors": st_bytes({"a": tensor("F32", [3], 0, 8)}, data),
        "data_truncated.safetensors": st_bytes(ok, b"\0" * 4),
        "trailing_bytes.safetensors": st_bytes(ok, data + b"\0"),
        "duplicate_names.safetensors": st_bytes(
            None, b"\0" * 16,
            raw_header=b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
                       b'"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}'),
        "metadata_not_string.safetensors": st_bytes(
            {"__metadata__": {"epoch": 3}, "a": tensor("F32", [2], 0, 8)}, data),
        "deep_nesting.safetensors": st_bytes(None, b"", raw_header=b"[" * 100000 + b"]" * 100000),
    }
    for name, blob in files.items():
        write(os.path.join(d, name), blob)


def bad_indexes(d):
    shard = st_bytes({"a": tensor("F32", [2], 0, 8)}, b"\0" * 8)
    write(os.path.join(d, "shard-1.safetensors"), shard)
    indexes = {
        "escape.safetensors.index.json": {"weight_map": {"a": "../shard-1.safetensors"}},
        "subdir.safetensors.index.json": {"weight_map": {"a": "sub/shard-1.safetensors"}},
        "missing_shard.safetensors.index.json": {"weight_map": {"a": "nope.safetensors"}},
        "unlisted_tensor.safetensors.index.json": {"weight_map": {"b": "shard-1.safetensors"}},
        "missing_tensor.safetensors.index.json": {
            "weight_map": {"a": "shard-1.safetensors", "b": "shard-1.safetensors"}},
        "no_weight_map.safetensors.index.json": {"metadata": {}},
    }
    for name, obj in indexes.items():
        write(os.path.join(d, name), json.dumps(obj).encode())
    write(os.path.join(d, "bad_json.safetensors.index.json"), b'{"weight_map": {')


def copy_file(fields):
    """A COPY BINARY file with one row of (int, soup.tensor) raw fields."""
    out = b"PGCOPY\n\xff\r\n\0" + struct.pack("!ii", 0, 0)
    out += struct.pack("!h", len(fields))
    for f in fields:
        out += struct.pack("!i", len(f)) + f
    return out + struct.pack("!h", -1)


def bad_copy(d):
    one = struct.pack("!i", 1)
    f32 = struct.pack("<f", 1.0)
    payloads = {
        "recv_bad_version": b"\x02\x01\x01" + struct.pack("!i", 1) + f32,
        "recv_bad_dtype": b"\x01\x63\x01" + struct.pack("!i", 1) + f32,
        "recv_too_many_dims": b"\x01\x01\x21" + struct.pack("!i", 1) * 33 + f32,
        "recv_negative_dim": b"\x01\x01\x01" + struct.pack("!i", -1),
        "recv_short_data": b"\x01\x01\x01" + struct.pack("!i", 2) + f32,
        "recv_long_data": b"\x01\x01\x01" + struct.pack("!i", 1) + f32 + b"\0",
        "recv_truncated_header": b"\x01\x01",
        "recv_huge_shape": b"\x01\x01\x02" + struct.pack("!ii", 1 << 30, 1 << 30),
    }
    for name, p in payloads.items():
        write(os.path.join(d, name + ".copy"), copy_file([one, p]))


# ---- well-formed checkpoints and their merges, computed by numpy ----

def bf16_bits(x):
    """Round a float64 to bfloat16 by exact comparison with its neighbours."""
    from fractions import Fraction
    if np.isnan(x):
        return 0x7FC0 | (0x8000 if np.signbit(x) else 0)
    base = int(np.array(np.float32(x)).view(np.uint32)) >> 16
    sign = base & 0x8000
    best = None
    for cand in (base - 1, base, base + 1):
        mag = cand & 0x7FFF
        if cand < 0 or (cand ^ sign) & 0x8000 or mag > 0x7F80:
            continue
        # infinity stands where the next binade would start: 2^128
        v = Fraction(2) ** 128 if mag == 0x7F80 else Fraction(
            float(np.array([cand << 16], dtype=np.uint32).view(np.float32)[0]))
        if sign and mag == 0x7F80:
            v = -v
        dist = abs(Fraction(float(x)) - v) if not np.isinf(x) else (0 if mag == 0x7F80 else 1)
        key = (dist, cand & 1)
        if best is None or key < best[0]:
            best = (key, cand)
    return best[1]


def to_dtype(a64, dtype):
    if dtype == "F64":
        return a64.astype("<f8").tobytes()
    if dtype == "F32":
        return a64.astype("<f4").tobytes()
    if dtype == "F16":
        return a64.astype("<f2").tobytes()
    if dtype == "BF16":
        return np.array([bf16_bits(v) for v in a64.ravel()], dtype="<u2").tobytes()
    raise ValueError(dtype)


def from_dtype(blob, dtype):
    if dtype == "BF16":
        u = np.frombuffer(blob, dtype="<u2").astype(np.uint32) << 16
        return u.view(np.float32).astype(np.float64)
    return np.frombuffer(blob, dtype={"F64": "<f8", "F32": "<f4", "F16": "<f2"}[dtype]).astype(np.float64)


def exact_mean(arrays, weights):
    """pg_soup's documented semantics, computed with exact rationals:
    round((sum of float64 products w*x, summed exactly) / float64(sum w))."""
    from fractions import Fraction
    wsum = float(sum(Fraction(w) for w in weights))
    out = np.empty(arrays[0].shape, dtype=np.float64)
    for i in range(arrays[0].size):
        s = sum(Fraction(float(np.float64(w) * a[i])) for w, a in zip(weights, arrays))
        out[i] = float(s / Fraction(wsum))
    return out


GEN_TENSORS = [("w32", "F32", [37, 29]), ("w16", "F16", [100]), ("wb16", "BF16", [3, 50]),
               ("w64", "F64", [10]), ("step", "I64", [1]), ("mask", "BOOL", [5])]


def write_model(path, tensors, metadata=None):
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, blob in tensors:
        header[name] = tensor(dtype, shape, len(data), len(data) + len(blob))
        data += blob
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    write(path, struct.pack("<Q", len(h)) + h + data)


def gen_models(d):
    rng = np.random.default_rng(20241126)
    models = []
    for i in range(3):
        ts = []
        for name, dtype, shape in GEN_TENSORS:
            n = int(np.prod(shape))
            if dtype == "I64":
                blob = np.array([1000], dtype="<i8").tobytes()
            elif dtype == "BOOL":
                blob = np.array([1, 0, 1, 1, 0], dtype=np.uint8).tobytes()
            else:
                blob = to_dtype(rng.standard_normal(n) * (i + 1), dtype)
            ts.append((name, dtype, shape, blob))
        write_model(os.path.join(d, "g%d.safetensors" % (i + 1)), ts, {"format": "pt"})
        models.append(ts)
    for label, w in (("avg", [1.0, 1.0, 1.0]), ("wavg", [1.0, 2.0, 0.5])):
        out = []
        for k, (name, dtype, shape) in enumerate(GEN_TENSORS):
            if dtype in ("I64", "BOOL"):
                out.append(models[0][k])
                continue
            out.append((name, dtype, shape,
                        to_dtype(exact_mean([from_dtype(m[k][3], dtype) for m in models], w), dtype)))
        write_model(os.path.join(d, "expected_%s.safetensors" % label), out, {"format": "pt"})
    # a model whose w32 has another shape, and one with another dtype
    ts = list(models[0])
    ts[0] = ("w32", "F32", [29, 37], ts[0][3])
    write_model(os.path.join(d, "g_shape.safetensors"), ts)
    ts = list(models[0])
    ts[3] = ("w64", "F32", [10], to_dtype(np.zeros(10), "F32"))
    write_model(os.path.join(d, "g_dtype.safetensors"), ts)
    ts = list(models[0])[:-1]
    write_model(os.path.join(d, "g_fewer.safetensors"), ts)
    ts = list(models[0])
    ts[4] = ("step", "I64", [1], np.array([2000], dtype="<i8").tobytes())
    write_model(os.path.join(d, "g_step.safetensors"), ts)
    # tensors with a zero dimension store no chunks but keep their shapes
    write_model(os.path.join(d, "g_empty.safetensors"),
                [("e0", "F32", [0, 3], b""), ("e1", "BF16", [4, 0, 2], b""),
                 ("x", "F32", [2], to_dtype(np.array([1.5, -2.0]), "F32"))])

    base = gen_method_models(d, models)
    gen_angle_models(d, models, base)
    gen_sparse_models(d, models, base)


def float_tensors(models, k):
    """The k-th tensor of every model as float64 arrays, with its dtype."""
    dtype = GEN_TENSORS[k][1]
    return dtype, [from_dtype(m[k][3], dtype) for m in models]


def merged_model(models, fn):
    """A model whose float tensors are fn(dtype, arrays), raw ones copied."""
    out = []
    for k, (name, dtype, shape) in enumerate(GEN_TENSORS):
        if dtype in ("I64", "BOOL"):
            out.append(models[0][k])
        else:
            out.append((name, dtype, shape, to_dtype(fn(k, *float_tensors(models, k)), dtype)))
    return out


def exact_fisher(xs, fs, weights, floor):
    """sum(RN(RN(w f') x)) / RN(sum(RN(w f'))), sums exact, f' = max(f, floor)."""
    from fractions import Fraction
    out = np.empty(xs[0].shape)
    for i in range(xs[0].size):
        wf = [float(np.float64(w) * max(f[i], floor)) for w, f in zip(weights, fs)]
        num = sum(Fraction(float(a * x[i])) for a, x in zip(wf, xs))
        den = float(sum(Fraction(a) for a in wf))
        out[i] = float(num / Fraction(den))
    return out


def exact_task(xs, base, weights, lam):
    """base + lam * RN(sum(RN(w RN(x - base)))), the sum exact."""
    from fractions import Fraction
    out = np.empty(base.shape)
    for i in range(base.size):
        s = float(sum(Fraction(float(w * (x[i] - base[i]))) for w, x in zip(weights, xs)))
        out[i] = base[i] + lam * s
    return out


def seq_ema(xs, decays):
    e = xs[0].copy()
    for d, x in zip(decays[1:], xs[1:]):
        e = d * e + (1.0 - d) * x
    return e


def fisher_norm(fisher):
    """sqrt of the exact sum of squares, rounded once to float64: what
    soup.gram and soup.dd_sum give for any chunking."""
    import math
    squares = []
    for name, dtype, shape, blob in fisher:
        if dtype in ("I64", "BOOL"):
            continue
        squares.extend(float(v) * float(v) for v in from_dtype(blob, dtype))
    return float(np.sqrt(math.fsum(squares)))


def gen_method_models(d, models):
    """Fisher diagonals, a base model, and the expected merges of each method."""
    rng = np.random.default_rng(7)
    fishers = []
    for i in range(3):
        ts = []
        for name, dtype, shape in GEN_TENSORS:
            n = int(np.prod(shape))
            if dtype in ("I64", "BOOL"):
                ts.append((name, dtype, shape, models[0][GEN_TENSORS.index((name, dtype, shape))][3]))
                continue
            f = np.abs(rng.standard_normal(n)) * (i + 1) * 1e-3
            f[rng.random(n) < 0.1] = 0.0        # below the floor
            ts.append((name, "F32", shape, to_dtype(f, "F32")))
        write_model(os.path.join(d, "fisher%d.safetensors" % (i + 1)), ts, {"format": "pt"})
        fishers.append(ts)
    fs32 = lambda k: [from_dtype(f[k][3], "F32") for f in fishers]  # noqa: E731
    w = [1.0, 2.0, 0.5]
    write_model(os.path.join(d, "expected_fisher.safetensors"),
                merged_model(models, lambda k, dt, xs: exact_fisher(xs, fs32(k), w, 1e-6)), {"format": "pt"})
    wn = [wi / fisher_norm(f) for wi, f in zip(w, fishers)]
    write_model(os.path.join(d, "expected_fisher_norm.safetensors"),
                merged_model(models, lambda k, dt, xs: exact_fisher(xs, fs32(k), wn, 1e-4)), {"format": "pt"})

    base = []
    for name, dtype, shape in GEN_TENSORS:
        k = GEN_TENSORS.index((name, dtype, shape))
        if dtype in ("I64", "BOOL"):
            base.append(models[0][k])
        else:
            base.append((name, dtype, shape, to_dtype(rng.standard_normal(int(np.prod(shape))), dtype)))
    write_model(os.path.join(d, "base.safetensors"), base, {"format": "pt"})
    tw = [0.5, 1.0, -0.3]
    write_model(os.path.join(d, "expected_task.safetensors"),
                merged_model(models, lambda k, dt, xs: exact_task(xs, from_dtype(base[k][3], dt), tw, 0.7)),
                {"format": "pt"})

    write_model(os.path.join(d, "expected_ema.safetensors"),
                merged_model(models, lambda k, dt, xs: seq_ema(xs, [0.9] * 3)), {"format": "pt"})
    steps = [100.0, 200.0, 300.0]
    warm = [min(0.999, 1.0 - (1.0 + t / 50.0) ** -0.75) for t in steps]
    write_model(os.path.join(d, "expected_ema_warmup.safetensors"),
                merged_model(models, lambda k, dt, xs: seq_ema(xs, warm)), {"format": "pt"})
    return base


def exact_dot(a, b):
    from fractions import Fraction
    return float(sum(Fraction(float(x * y)) for x, y in zip(a, b)))


def slerp_ref(a, b, t):
    """soup.slerp_coefficients and soup.lincomb, operation for operation."""
    import math
    aa, ab, bb = exact_dot(a, a), exact_dot(a, b), exact_dot(b, b)
    if aa == 0 or bb == 0:
        s0, s1 = 1 - t, t
    else:
        c = max(-1.0, min(1.0, ab / math.sqrt(aa * bb)))
        if abs(c) > 0.9995:
            s0, s1 = 1 - t, t
        else:
            th = math.acos(c)
            s0, s1 = math.sin((1 - t) * th) / math.sin(th), math.sin(t * th) / math.sin(th)
    return s0 * a + s1 * b


def model_stock_ref(xs, base):
    """Model Stock as documented: t from the mean pairwise cosine of the task
    vectors, then base + (t / n) * sum(x_i - base)."""
    import math
    n = len(xs)
    taus = [np.array([float(v) for v in (x - base)]) for x in xs]
    g = [[exact_dot(taus[i], taus[j]) for j in range(n)] for i in range(n)]
    c = 0.0
    for i in range(n - 1):
        for j in range(i + 1, n):
            if g[i][i] > 0 and g[j][j] > 0:
                c = c + g[i][j] / math.sqrt(g[i][i] * g[j][j])
    c = c / (n * (n - 1) // 2)
    t = n * c / (1 + (n - 1) * c)
    return exact_task(xs, base, [1.0] * n, t / n)


def gen_angle_models(d, models, base):
    write_model(os.path.join(d, "expected_slerp.safetensors"),
                merged_model(models[:2], lambda k, dt, xs: slerp_ref(xs[0], xs[1], 0.3)), {"format": "pt"})
    write_model(os.path.join(d, "expected_model_stock.safetensors"),
                merged_model(models, lambda k, dt, xs: model_stock_ref(xs, from_dtype(base[k][3], dt))),
                {"format": "pt"})

    def ema_steps(k, dt, xs):
        e = xs[0]
        for x in xs[1:]:
            e = from_dtype(to_dtype(0.9 * e + (1.0 - 0.9) * x, dt), dt)   # rounded at each update
        return e
    write_model(os.path.join(d, "expected_ema_update.safetensors"),
                merged_model(models, ema_steps), {"format": "pt"})


# ---- TIES and DARE, following docs/merges.md ----

M64 = (1 << 64) - 1


def splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def fnv1a(data):
    h = 14695981039346656037
    for c in data:
        h = ((h ^ c) * 1099511628211) & M64
    return h


def dare_keep(seed, model_key, tensor_name, n, density):
    key = splitmix64(splitmix64(splitmix64(seed & M64) ^ model_key) ^ fnv1a(tensor_name.encode()))
    return [((splitmix64(key ^ splitmix64(j)) >> 11) * 2.0 ** -53) < density for j in range(n)]


def ties_combine(taus, weights, base, lam):
    """Sign election over weighted sparse task vectors, mean of the agreeing side."""
    from fractions import Fraction
    out = np.empty(base.shape)
    for i in range(base.size):
        P = Q = WP = WQ = Fraction(0)
        for w, t in zip(weights, taus):
            p = float(np.float64(w) * t[i])
            if p > 0:
                P += Fraction(p)
                WP += Fraction(w)
            elif p < 0:
                Q += Fraction(p)
                WQ += Fraction(w)
        pp, qq = float(P), float(Q)
        ssum = pp + qq
        m = 0.0
        if ssum > 0:
            wp = float(WP)
            m = pp / (wp if wp != 0 else 1.0)
        elif ssum < 0:
            wq = float(WQ)
            m = qq / (wq if wq != 0 else 1.0)
        out[i] = base[i] + lam * m
    return out


def trim(tau, density):
    import math
    k = math.floor(density * tau.size)
    thr = float("inf") if k <= 0 else sorted(np.abs(tau), reverse=True)[k - 1]
    return np.where(np.abs(tau) >= thr, tau, 0.0)


def dare(tau, name, key, density, seed, l1):
    from fractions import Fraction
    keep = dare_keep(seed, key, name, tau.size, density)
    scale = 1.0 / density
    if l1:
        s1 = float(sum(Fraction(abs(float(v))) for v in tau))
        s2 = float(sum(Fraction(abs(float(v))) for v, k in zip(tau, keep) if k))
        if s2 != 0:
            scale = s1 / s2
    return np.array([v * scale if k else 0.0 for v, k in zip(tau, keep)])


def delta_sum(taus, weights, base, lam):
    from fractions import Fraction
    out = np.empty(base.shape)
    for i in range(base.size):
        s = float(sum(Fraction(float(np.float64(w) * t[i])) for w, t in zip(weights, taus)))
        out[i] = base[i] + lam * s
    return out


def gen_sparse_models(d, models, base):
    def taus(k, dt, xs):
        b = from_dtype(base[k][3], dt)
        return b, [np.array([float(v) for v in (x - b)]) for x in xs]

    def ties(k, dt, xs):
        b, ts = taus(k, dt, xs)
        return ties_combine([trim(t, 0.5) for t in ts], [1.0, 2.0, 0.5], b, 1.0)

    def dare_linear(k, dt, xs):
        b, ts = taus(k, dt, xs)
        name = GEN_TENSORS[k][0]
        return delta_sum([dare(t, name, i + 1, 0.7, 42, False) for i, t in enumerate(ts)],
                         [0.5, 1.0, -0.3], b, 0.7)

    def dare_ties(k, dt, xs):
        b, ts = taus(k, dt, xs)
        name = GEN_TENSORS[k][0]
        return ties_combine([dare(t, name, i + 1, 0.6, -7, True) for i, t in enumerate(ts)],
                            [1.0, 1.0, 1.0], b, 1.0)

    for label, fn in (("ties", ties), ("dare_linear", dare_linear), ("dare_ties", dare_ties)):
        write_model(os.path.join(d, "expected_%s.safetensors" % label), merged_model(models, fn),
                    {"format": "pt"})


# ---- the two real PEFT checkpoints: SLERP and DARE against numpy ----

def gen_peft(d, fixtures):
    import math
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
    import st
    meta, a = st.read(os.path.join(fixtures, "peft-finegates-mrpc/checkpoint-230/adapter_model.safetensors"))
    _, b = st.read(os.path.join(fixtures, "peft-finegates-mrpc/checkpoint-2300/adapter_model.safetensors"))
    slerp_out, dare_out = [], []
    for name, (dtype, shape, raw) in a.items():
        x = st.array(a[name]).astype(np.float64).ravel()
        y = st.array(b[name]).astype(np.float64).ravel()
        # products of float32 values are exact in float64; fsum rounds the exact sum once
        aa, ab, bb = math.fsum(x * x), math.fsum(x * y), math.fsum(y * y)
        t = 0.25
        c = max(-1.0, min(1.0, ab / math.sqrt(aa * bb)))
        if aa == 0 or bb == 0 or abs(c) > 0.9995:
            s0, s1 = 1 - t, t
        else:
            th = math.acos(c)
            s0, s1 = math.sin((1 - t) * th) / math.sin(th), math.sin(t * th) / math.sin(th)
        slerp_out.append((name, dtype, shape, (s0 * x + s1 * y).astype("<f4").tobytes()))
        # dare_linear of model 2300 on base 230: one model, so the sum is one product
        tau = y - x
        key = splitmix64(splitmix64(splitmix64(99) ^ 1) ^ fnv1a(name.encode()))
        u = np.array([(splitmix64(key ^ splitmix64(j)) >> 11) for j in range(tau.size)], dtype=np.float64) * 2.0 ** -53
        kept = np.where(u < 0.5, tau * (1.0 / 0.5), 0.0)
        dare_out.append((name, dtype, shape, (x + 1.5 * (0.8 * kept)).astype("<f4").tobytes()))
    write_model(os.path.join(d, "expected_peft_slerp.safetensors"), slerp_out, meta)
    write_model(os.path.join(d, "expected_peft_dare.safetensors"), dare_out, meta)


DET_TENSORS = [("w", "F32", [600, 500]), ("h", "BF16", [70001]), ("e", "F16", [50000]),
               ("d", "F64", [30000])]


def gen_determinism(d):
    """Models large enough that every kernel splits its chunks across OpenMP
    threads: 4 checkpoints, a base, 4 Fishers; and the uniform average, whose
    weight sum 4 makes the exact reference a correctly rounded sum over 4."""
    import math
    rng = np.random.default_rng(20261127)
    models = []
    for i in range(4):
        ts = []
        for name, dtype, shape in DET_TENSORS:
            ts.append((name, dtype, shape, to_dtype(rng.standard_normal(int(np.prod(shape))) * (i + 1), dtype)))
        write_model(os.path.join(d, "det%d.safetensors" % (i + 1)), ts)
        models.append(ts)
    for label, scale in (("det_base", 0.1), ("det_f1", 1), ("det_f2", 2), ("det_f3", 3), ("det_f4", 4)):
        ts = []
        for name, dtype, shape in DET_TENSORS:
            v = rng.standard_normal(int(np.prod(shape))) * scale
            ts.append((name, dtype, shape, to_dtype(np.abs(v) + 0.01 if label != "det_base" else v, dtype)))
        write_model(os.path.join(d, label + ".safetensors"), ts)
    out = []
    for k, (name, dtype, shape) in enumerate(DET_TENSORS):
        xs = np.stack([from_dtype(m[k][3], dtype) for m in models], axis=1)
        mean = np.array([math.fsum(row) for row in xs]) / 4.0
        out.append((name, dtype, shape, to_dtype(mean, dtype)))
    write_model(os.path.join(d, "expected_det_avg.safetensors"), out)


def main():
    out, fixtures = sys.argv[1], sys.argv[2]
    for sub in ("bad", "gen"):
        shutil.rmtree(os.path.join(out, sub), ignore_errors=True)
        os.makedirs(os.path.join(out, sub))
    shutil.rmtree(os.path.join(out, "fixtures"), ignore_errors=True)
    shutil.copytree(fixtures, os.path.join(out, "fixtures"))
    bad_safetensors(os.path.join(out, "bad"))
    bad_indexes(os.path.join(out, "bad"))
    bad_copy(os.path.join(out, "bad"))
    gen_models(os.path.join(out, "gen"))
    gen_peft(os.path.join(out, "gen"), fixtures)
    gen_determinism(os.path.join(out, "gen"))


if __name__ == "__main__":
    main()
