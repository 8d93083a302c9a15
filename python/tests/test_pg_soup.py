"""Tests of the pg_soup Python package against a running server.

Environment: PG_SOUP_TEST_DSN (an ordinary role with rights on the soup
tables), PG_SOUP_TEST_ADMIN_DSN (a superuser, for the failure injection),
SOUP_FIXTURES and SOUP_DATA (../shared).  References are independent of
pg_soup: the original bytes, files written by the reference safetensors
library, numpy float64, and published fits.
"""
import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET

import numpy as np
import psycopg2
import torch

import pg_soup
from pg_soup import SoupError

DSN = os.environ.get("PG_SOUP_TEST_DSN", "")
ADMIN_DSN = os.environ.get("PG_SOUP_TEST_ADMIN_DSN", DSN)
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FIXTURES = os.environ.get("SOUP_FIXTURES", os.path.join(ROOT, "..", "shared", "fixtures", "safetensors"))
DATA = os.environ.get("SOUP_DATA", os.path.join(ROOT, "..", "shared", "data"))
FLUX = os.path.join(FIXTURES, "fluxml-safetensors-jl")
PEFT = os.path.join(FIXTURES, "peft-finegates-mrpc")


def raw(t):
    """The bytes of a tensor or array, in row-major order."""
    if isinstance(t, torch.Tensor):
        t = t.contiguous()
        if t.dtype == torch.bfloat16:
            return t.view(torch.int16).numpy().tobytes()
        return t.numpy().tobytes()
    return np.ascontiguousarray(t).tobytes()


def read_safetensors(path):
    """Independent reader: {name: (dtype, shape, bytes)}, metadata."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = json.loads(f.read(n))
        data = f.read()
    meta = head.pop("__metadata__", None)
    return {k: (v["dtype"], v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]])
            for k, v in head.items()}, meta


class Base(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.conn = psycopg2.connect(DSN)
        cls.tmp = tempfile.mkdtemp(prefix="pg_soup_py.")

    @classmethod
    def tearDownClass(cls):
        cls.conn.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def q(self, sql, args=()):
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            rows = cur.fetchall()
        self.conn.rollback()
        return rows

    def rows_of(self, model):
        return self.q("SELECT (SELECT count(*) FROM soup.models WHERE name = %s), "
                      "(SELECT count(*) FROM soup.tensors t JOIN soup.models m ON m.id = t.model_id "
                      " WHERE m.name = %s), (SELECT count(*) FROM soup.weights WHERE model = %s)",
                      (model, model, model))[0]


class StateDicts(Base):
    def torch_state_dict(self):
        g = torch.Generator().manual_seed(7)
        f32 = torch.randn(37, 11, generator=g)
        f32[0, :4] = torch.tensor([float("nan"), float("inf"), -0.0, 1e-45])   # NaN, inf, -0, subnormal
        shared = torch.randn(6, 5, generator=g)
        sd = {
            "f32": f32,
            "f64": torch.randn(3, 5, 7, generator=g, dtype=torch.float64),
            "f16": torch.randn(129, generator=g).to(torch.float16),
            "bf16": torch.randn(4, 33, generator=g).to(torch.bfloat16),
            "i8": torch.randint(-128, 127, (50,), generator=g, dtype=torch.int8),
            "u8": torch.randint(0, 255, (50,), generator=g, dtype=torch.uint8),
            "i16": torch.randint(-30000, 30000, (9,), generator=g, dtype=torch.int16),
            "i32": torch.randint(-2**31, 2**31 - 1, (9,), generator=g, dtype=torch.int32),
            "i64": torch.arange(-5, 40, dtype=torch.int64) * (2**40),
            "bool": torch.rand(23, generator=g) > 0.5,
            "c64": torch.randn(8, generator=g, dtype=torch.complex64),
            "transposed": f32.t(),                        # non-contiguous
            "strided": f32[::3, 1::2],                    # a strided view
            "tied.a": shared, "tied.b": shared,           # one storage, two names
            "scalar": torch.tensor(3.5),
            "empty": torch.zeros(0, 4),
        }
        return sd

    def test_torch_round_trip_every_dtype(self):
        sd = self.torch_state_dict()
        for ce in (None, 7):
            name = "py-torch-%s" % ce
            pg_soup.save_state_dict(self.conn, sd, name, run="py", step=1,
                                    metadata={"origin": "test"}, chunk_elems=ce)
            back = pg_soup.load_state_dict(self.conn, name)
            self.assertEqual(list(back), list(sd), "names in order")
            for k, v in sd.items():
                self.assertEqual(back[k].dtype, v.dtype, k)
                self.assertEqual(tuple(back[k].shape), tuple(v.shape), k)
                self.assertEqual(raw(back[k]), raw(v), "bits of %s (chunk_elems %s)" % (k, ce))
            self.assertEqual(self.q("SELECT count(*) FROM soup.verify(%s)", (name,))[0][0], 0)
        # the layout is the server's: default chunks as soup.import_safetensors makes them
        ce = self.q("SELECT DISTINCT chunk_elems FROM soup.tensors t JOIN soup.models m "
                    "ON m.id = t.model_id WHERE m.name = 'py-torch-None'")
        self.assertEqual(ce, self.q("SELECT current_setting('soup.chunk_elems')::int"))

    def test_numpy_round_trip(self):
        rng = np.random.default_rng(3)
        bits = rng.integers(0, 2**16, 40, dtype=np.uint16)
        bits[(bits & 0x7F80) == 0x7F80] = 0x3F80      # no NaN/inf patterns: compare as floats too
        sd = {"f32": rng.standard_normal((5, 6)).astype(np.float32),
              "big_endian": rng.standard_normal(10).astype(">f8"),
              "u16": rng.integers(0, 2**16, 7, dtype=np.uint16),
              "u32": rng.integers(0, 2**32, 7, dtype=np.uint32),
              "u64": rng.integers(0, 2**63, 7, dtype=np.uint64),
              "bf16": bits, "bf16_from_f32": np.array([1.0, -2.5, 0.15625], np.float32),
              "fortran": np.asfortranarray(rng.standard_normal((4, 3)))}
        pg_soup.save_state_dict(self.conn, sd, "py-numpy",
                                dtypes={"bf16": "bf16", "bf16_from_f32": "bf16"})
        back = pg_soup.load_state_dict(self.conn, "py-numpy", framework="numpy")
        for k in ("f32", "u16", "u32", "u64", "fortran"):
            self.assertEqual(back[k].dtype.newbyteorder("<"), sd[k].dtype.newbyteorder("<"), k)
            self.assertEqual(back[k].tobytes(), np.ascontiguousarray(sd[k]).tobytes(), k)
        self.assertTrue(np.array_equal(back["big_endian"], sd["big_endian"]))
        self.assertEqual(back["big_endian"].dtype, np.dtype("<f8"))
        # bf16: float32 values equal torch's own widening; bits come back as stored
        ref = torch.from_numpy(bits.view(np.int16)).view(torch.bfloat16).float().numpy()
        self.assertEqual(back["bf16"].dtype, np.float32)
        self.assertEqual(back["bf16"].tobytes(), ref.tobytes())
        self.assertEqual(back["bf16_from_f32"].tolist(), [1.0, -2.5, 0.15625])
        as_bits = pg_soup.load_state_dict(self.conn, "py-numpy", framework="numpy", bf16="bits")
        self.assertEqual(as_bits["bf16"].tobytes(), bits.tobytes())
        if not hasattr(torch, "uint16"):
            # torch before 2.3 has no uint16/32/64: a clear error, not a wrong dtype
            with self.assertRaises(SoupError) as e:
                pg_soup.load_state_dict(self.conn, "py-numpy", framework="torch")
            self.assertEqual(e.exception.sqlstate, "42804")
        pg_soup.save_state_dict(self.conn, {"bf16": bits}, "py-numpy-bf16", dtypes={"bf16": "bf16"})
        t = pg_soup.load_state_dict(self.conn, "py-numpy-bf16", framework="torch")["bf16"]
        self.assertEqual(t.dtype, torch.bfloat16)
        self.assertEqual(t.view(torch.int16).numpy().tobytes(), bits.tobytes())
        with self.assertRaises(SoupError) as e:
            pg_soup.save_state_dict(self.conn, {"x": np.array([1.1], np.float32)}, "py-bad-bf16",
                                    dtypes={"x": "bf16"})
        self.assertEqual(e.exception.sqlstate, "22023")

    def test_same_rows_as_the_server_import(self):
        """save_state_dict of a file's tensors stores what soup.import_safetensors
        stores for the file (written by the reference safetensors library)."""
        path = os.path.join(FLUX, "non_sharded", "model.numpy.safetensors")
        tensors, _ = read_safetensors(path)
        dt = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4",
              "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?"}
        sd = {k: np.frombuffer(b, dt[d]).reshape(s) for k, (d, s, b) in tensors.items()}
        pg_soup.save_state_dict(self.conn, sd, "py-flux-numpy")
        admin = psycopg2.connect(ADMIN_DSN)
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute("SELECT soup.import_safetensors(%s, 'srv-flux-numpy')", (path,))
        admin.close()
        same = self.q(
            "SELECT count(*) FILTER (WHERE a.data IS NULL OR b.data IS NULL "
            "                        OR soup.bytes(a.data) <> soup.bytes(b.data)), count(*) "
            "FROM (SELECT tensor, chunk, data FROM soup.weights WHERE model = 'py-flux-numpy') a "
            "FULL JOIN (SELECT tensor, chunk, data FROM soup.weights WHERE model = 'srv-flux-numpy') b "
            "USING (tensor, chunk)")[0]
        self.assertEqual(same[0], 0)
        self.assertGreater(same[1], 0)

    def test_failed_save_leaves_no_rows(self):
        # refused before a row is written
        with self.assertRaises(SoupError) as e:
            pg_soup.save_state_dict(self.conn, {"a": torch.zeros(3), "b": [1, 2, 3]}, "py-fail")
        self.assertEqual(e.exception.sqlstate, "42804")
        self.assertEqual(self.rows_of("py-fail"), (0, 0, 0))
        # the server fails in the middle of the COPY: a trigger refuses chunk 3
        admin = psycopg2.connect(ADMIN_DSN)
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute("CREATE FUNCTION pg_temp.no3() RETURNS trigger LANGUAGE plpgsql AS $$ "
                        "BEGIN IF NEW.chunk = 3 THEN RAISE EXCEPTION 'injected' USING ERRCODE = 'XX000'; "
                        "END IF; RETURN NEW; END $$")
            cur.execute("CREATE TRIGGER py_no3 BEFORE INSERT ON soup.chunks FOR EACH ROW "
                        "EXECUTE FUNCTION pg_temp.no3()")
        try:
            sd = {"w": torch.randn(100)}
            with self.assertRaises(SoupError) as e:
                pg_soup.save_state_dict(self.conn, sd, "py-fail", chunk_elems=10)
            self.assertEqual(e.exception.sqlstate, "XX000")
            self.assertIn("injected", str(e.exception))
            self.assertEqual(self.rows_of("py-fail"), (0, 0, 0))
            # inside the caller's transaction: back to the savepoint, the rest stays
            with self.conn.cursor() as cur:
                cur.execute("SELECT soup.log_metrics('py-tx', 1, '{\"loss\": 2}')")
            with self.assertRaises(SoupError):
                pg_soup.save_state_dict(self.conn, sd, "py-fail", chunk_elems=10, commit=False)
            self.conn.commit()
            self.assertEqual(self.rows_of("py-fail"), (0, 0, 0))
            self.assertEqual(self.q("SELECT value FROM soup.metrics WHERE run = 'py-tx'"), [(2.0,)])
        finally:
            with admin.cursor() as cur:
                cur.execute("DROP TRIGGER py_no3 ON soup.chunks")
            admin.close()
        pg_soup.save_state_dict(self.conn, sd, "py-fail", chunk_elems=10)
        self.assertEqual(self.rows_of("py-fail"), (1, 1, 10))

    def test_errors_carry_sqlstates(self):
        pg_soup.save_state_dict(self.conn, {"a": torch.zeros(2)}, "py-err")
        cases = [
            (lambda: pg_soup.save_state_dict(self.conn, {"a": torch.zeros(2)}, "py-err"), "42710"),
            (lambda: pg_soup.load_state_dict(self.conn, "py-no-such-model"), "42704"),
            (lambda: pg_soup.load_state_dict(self.conn, "py-err", framework="jax"), "22023"),
            (lambda: pg_soup.log_metrics(self.conn, "py-run", 1, {"loss": float("nan")}), "22023"),
            (lambda: pg_soup.merge(self.conn, "py-m", "no_such_method", ["py-err"]), "22023"),
            (lambda: pg_soup.merge(self.conn, "py-m", "avg", ["py-err", "py-missing"]), "42704"),
            (lambda: pg_soup.save_state_dict(self.conn, {"a": torch.zeros(2, dtype=torch.complex128)}, "py-c"), "42804"),
        ]
        for fn, state in cases:
            with self.assertRaises(SoupError) as e:
                fn()
            self.assertEqual(e.exception.sqlstate, state, str(e.exception))
        # the connection is usable after each error
        self.assertEqual(self.q("SELECT 1"), [(1,)])


class Merges(Base):
    def test_merge_equals_float64_reference(self):
        g = torch.Generator().manual_seed(11)
        sds = [{"w": torch.randn(300, 7, generator=g) * 10 ** k, "b": torch.randn(5, generator=g)}
               for k in range(3)]
        for i, sd in enumerate(sds):
            pg_soup.save_state_dict(self.conn, sd, "py-soup-%d" % i, chunk_elems=256)
        w = [0.5, 0.3, 0.2]
        mid = pg_soup.merge(self.conn, "py-soup", "avg", ["py-soup-%d" % i for i in range(3)], weights=w)
        self.assertIsInstance(mid, int)
        back = pg_soup.load_state_dict(self.conn, "py-soup", framework="numpy")
        for k in ("w", "b"):
            ref = sum(wi * sd[k].numpy().astype(np.float64) for wi, sd in zip(w, sds)) / sum(w)
            got = back[k].astype(np.float64)
            ulp = np.spacing(np.abs(ref).astype(np.float32)).astype(np.float64)
            # correctly rounded: within half an f32 ulp of the float64 mean
            self.assertTrue(np.all(np.abs(got - ref) <= 0.5 * ulp * (1 + 1e-6)), k)
        rec = self.q("SELECT recipe->>'method', recipe->'weights' FROM soup.models WHERE name = 'py-soup'")
        self.assertEqual(rec, [("avg", w)])
        # params pass through: task arithmetic with a base
        pg_soup.merge(self.conn, "py-task", "task_arithmetic", ["py-soup-1", "py-soup-2"],
                      base="py-soup-0", **{"lambda": 0.5})
        t = pg_soup.load_state_dict(self.conn, "py-task", framework="numpy")["b"].astype(np.float64)
        b = [sd["b"].numpy().astype(np.float64) for sd in sds]
        ref = b[0] + 0.5 * ((b[1] - b[0]) + (b[2] - b[0]))
        ulp = np.spacing(np.abs(ref).astype(np.float32)).astype(np.float64)
        self.assertTrue(np.all(np.abs(t - ref) <= 0.5 * ulp * (1 + 1e-6)))

    def test_merge_config(self):
        g = torch.Generator().manual_seed(5)
        for i in range(2):
            sd = {"model.layers.%d.mlp.weight" % l: torch.randn(4, 3, generator=g) for l in range(3)}
            sd["model.embed_tokens.weight"] = torch.randn(5, 3, generator=g)
            pg_soup.save_state_dict(self.conn, sd, "py-cfg-%d" % i)
        cfg = {"merge_method": "linear",
               "models": [{"model": "py-cfg-0", "parameters": {"weight": [1, 3]}},
                          {"model": "py-cfg-1", "parameters": {"weight": 1}}]}
        pg_soup.merge_config(self.conn, "py-cfg", cfg)
        got = pg_soup.load_state_dict(self.conn, "py-cfg", framework="numpy")
        a = pg_soup.load_state_dict(self.conn, "py-cfg-0", framework="numpy")
        b = pg_soup.load_state_dict(self.conn, "py-cfg-1", framework="numpy")
        # layer l of 3 has t = l / 2, so model 0's weight is 1 + 2t; embeddings t = 0
        for k in got:
            layer = int(k.split(".")[2]) if ".layers." in k else None
            w0 = 1 + 2 * (layer / 2) if layer is not None else 1.0
            ref = (w0 * a[k].astype(np.float64) + b[k].astype(np.float64)) / (w0 + 1)
            ulp = np.spacing(np.abs(ref).astype(np.float32)).astype(np.float64)
            self.assertTrue(np.all(np.abs(got[k] - ref) <= 0.5 * ulp * (1 + 1e-6)), k)
        with self.assertRaises(SoupError) as e:
            pg_soup.merge_config(self.conn, "py-cfg-bad", {"merge_method": "linear", "models": []})
        self.assertEqual(e.exception.sqlstate, "22023")

    def test_spherical_methods_against_numpy(self):
        """nuslerp, multislerp and karcher through merge_config against
        mergekit's formulas written out on the flat vectors in numpy
        float64 (pg_soup computes them from the exact Gram matrix)."""
        g = torch.Generator().manual_seed(9)
        names = ["sph-base", "sph-a", "sph-b", "sph-c"]
        sds = {}
        for i, n in enumerate(names):
            sd = {"model.layers.%d.w" % l: torch.randn(40, 7, generator=g) * (1 + i) for l in range(2)}
            sd["lm_head.weight"] = torch.randn(33, generator=g)
            pg_soup.save_state_dict(self.conn, sd, n, chunk_elems=64)
            sds[n] = {k: v.numpy().astype(np.float64).ravel() for k, v in sd.items()}

        def nuslerp(v0, v1, w0, w1):
            t = 0.5 if abs(w0 + w1) < 1e-6 else w1 / (w0 + w1)
            u0 = v0 / max(np.linalg.norm(v0), 1e-7)
            u1 = v1 / max(np.linalg.norm(v1), 1e-7)
            th = np.arccos(np.clip(np.dot(u0, u1), -1, 1))
            if abs(np.sin(th)) < 1e-8:
                return (1 - t) * v0 + t * v1
            return (np.sin((1 - t) * th) * v0 + np.sin(t * th) * v1) / np.sin(th)

        def multislerp(xs, w, eps=1e-8):
            w = np.array(w) / np.sum(w)
            n = [np.linalg.norm(x) for x in xs]
            u = [x / (ni + eps) for x, ni in zip(xs, n)]
            m = sum(wi * ui for wi, ui in zip(w, u))
            m = m / np.linalg.norm(m)
            T = sum(wi * (ui - np.dot(ui, m) * m) for wi, ui in zip(w, u))
            tau = np.linalg.norm(T) + eps
            return (np.cos(tau) * m + np.sin(tau) / tau * T) * np.dot(w, n)

        def karcher(xs, max_iter=10, tol=1e-5):
            n = [np.linalg.norm(x) for x in xs]
            valid = [i for i in range(len(xs)) if n[i] > tol]
            a = {i: 1.0 / len(valid) for i in valid}
            us = {i: xs[i] / n[i] for i in valid}
            u = sum(a[i] * us[i] for i in valid)
            u = u / np.linalg.norm(u)
            for _ in range(max_iter):
                T = np.zeros_like(u)
                for i in valid:
                    d = np.clip(np.dot(u, us[i]), -1, 1)
                    th = np.arccos(d)
                    if th < tol:
                        continue
                    T += a[i] * th / np.sin(th) * (us[i] - d * u)
                nt = np.linalg.norm(T)
                if nt < tol:
                    break
                u = np.cos(nt) * u + np.sin(nt) * T / nt
                if np.linalg.norm(u) > tol:
                    u = u / np.linalg.norm(u)
            return np.mean(n) * u

        B, A, Bm, C = (sds[n] for n in names)
        cases = {
            "sph-nu": ({"merge_method": "nuslerp", "models": [
                {"model": "sph-a", "parameters": {"weight": 0.7}}, {"model": "sph-b", "parameters": {"weight": 0.3}}]},
                lambda k: nuslerp(A[k], Bm[k], 0.7, 0.3)),
            "sph-nub": ({"merge_method": "nuslerp", "base_model": "sph-base", "models": [
                {"model": "sph-a", "parameters": {"weight": 1}}, {"model": "sph-b", "parameters": {"weight": 3}}]},
                lambda k: B[k] + nuslerp(A[k] - B[k], Bm[k] - B[k], 1, 3)),
            "sph-ms": ({"merge_method": "multislerp", "base_model": "sph-base", "models": [
                {"model": "sph-a", "parameters": {"weight": 1}}, {"model": "sph-b", "parameters": {"weight": 2}},
                {"model": "sph-c", "parameters": {"weight": 0.5}}]},
                lambda k: B[k] + multislerp([A[k] - B[k], Bm[k] - B[k], C[k] - B[k]], [1, 2, 0.5])),
            "sph-ka": ({"merge_method": "karcher", "models": [{"model": "sph-a"}, {"model": "sph-b"}, {"model": "sph-c"}]},
                       lambda k: karcher([A[k], Bm[k], C[k]])),
        }
        for target, (cfg, ref) in cases.items():
            pg_soup.merge_config(self.conn, target, cfg)
            got = pg_soup.load_state_dict(self.conn, target, framework="numpy")
            for k, v in got.items():
                r = ref(k)
                ulp = np.spacing(np.abs(r).astype(np.float32)).astype(np.float64)
                # float32 output: within an ulp of the float64 formula (it rounds
                # once; the formula's own float64 error is far below that)
                err = np.abs(v.ravel().astype(np.float64) - r)
                self.assertTrue(np.all(err <= ulp + 1e-12 * np.abs(r).max()), (target, k, err.max()))
        # chunk invariance: the same models stored in 5-element chunks merge to the same bits
        for n in names:
            sd = pg_soup.load_state_dict(self.conn, n)
            pg_soup.save_state_dict(self.conn, sd, n + "-5", chunk_elems=5)
        for target, (cfg, _) in cases.items():
            cfg = json.loads(json.dumps(cfg).replace('"sph-base"', '"sph-base-5"').replace('"sph-a"', '"sph-a-5"')
                             .replace('"sph-b"', '"sph-b-5"').replace('"sph-c"', '"sph-c-5"'))
            pg_soup.merge_config(self.conn, target + "-5", cfg)
            a = pg_soup.load_state_dict(self.conn, target, framework="numpy")
            b = pg_soup.load_state_dict(self.conn, target + "-5", framework="numpy")
            for k in a:
                self.assertEqual(a[k].tobytes(), b[k].tobytes(), (target, k))

    def test_breadcrumbs_against_numpy(self):
        """breadcrumbs through merge_config against the band mask written out
        in numpy: of each task vector, drop the floor(gamma n) largest
        magnitudes and keep the next floor(density n)."""
        g = torch.Generator().manual_seed(13)
        names = ["bc-base", "bc-a", "bc-b"]
        sds = {}
        for n in names:
            sd = {"model.layers.0.w": torch.randn(50, 9, generator=g), "lm_head.weight": torch.randn(77, generator=g)}
            pg_soup.save_state_dict(self.conn, sd, n, chunk_elems=100)
            sds[n] = {k: v.numpy().astype(np.float64).ravel() for k, v in sd.items()}

        def band(tau, density, gamma):
            n = tau.size
            keep = int(np.floor(density * n))
            top = min(int(np.floor(gamma * n)), n - keep)
            order = np.argsort(-np.abs(tau), kind="stable")
            mask = np.zeros(n)
            mask[order[top:top + keep]] = 1
            return tau * mask

        cfg = {"merge_method": "breadcrumbs", "base_model": "bc-base",
               "models": [{"model": "bc-a", "parameters": {"weight": 1.0, "density": 0.5, "gamma": 0.1}},
                          {"model": "bc-b", "parameters": {"weight": 0.5, "density": 0.3}}],
               "parameters": {"lambda": 0.8}}
        pg_soup.merge_config(self.conn, "bc-soup", cfg)
        got = pg_soup.load_state_dict(self.conn, "bc-soup", framework="numpy")
        B, A, Bb = (sds[n] for n in names)
        for k, v in got.items():
            ref = B[k] + 0.8 * (1.0 * band(A[k] - B[k], 0.5, 0.1) + 0.5 * band(Bb[k] - B[k], 0.3, 0.01))
            ulp = np.spacing(np.abs(ref).astype(np.float32)).astype(np.float64)
            err = np.abs(v.ravel().astype(np.float64) - ref)
            self.assertTrue(np.all(err <= ulp), (k, err.max()))
            # and the band really dropped something from the top
            self.assertNotEqual(band(A[k] - B[k], 0.5, 0.1).tolist(), band(A[k] - B[k], 0.5, 0).tolist())

    def test_della_against_numpy(self):
        """della and della_linear through merge_config against the draw
        written out in numpy: ranks of |tau| along dimension 1 (a 1-D tensor
        is one row; ties by position), keep probability (density - eps) +
        rank / (d1 - 1) * 2 eps, pg_soup's splitmix64 stream, L1 rescale."""
        # DARE's stream as the regression suite's reference generator writes it
        sys.path.insert(0, os.path.join(ROOT, "test"))
        from gen_test_data import M64, fnv1a, splitmix64

        def della(tau, name, model_key, seed, density, eps, rescale=True):
            t = tau if tau.ndim >= 2 else tau.reshape(1, -1)
            d1 = t.shape[1]
            order = np.argsort(np.abs(t), axis=1, kind="stable")
            ranks = np.empty(t.shape, dtype=np.int64)
            np.put_along_axis(ranks, order, np.arange(d1).reshape((1, d1) + (1,) * (t.ndim - 2)) + 0 * order, axis=1)
            if density >= 1:
                p = np.full(t.shape, 2.0)
            elif density <= 0:
                p = np.zeros(t.shape)
            elif d1 == 1:
                p = np.full(t.shape, density)
            else:
                p = (density - eps) + ranks / (d1 - 1) * (2 * eps)
            key = splitmix64(splitmix64(splitmix64(seed & M64) ^ model_key) ^ fnv1a(name.encode()))
            u = np.array([(splitmix64(key ^ splitmix64(e)) >> 11) for e in range(t.size)], dtype=np.float64) * 2.0 ** -53
            keep = (u.reshape(t.shape) < p).reshape(tau.shape)
            kept = math.fsum(np.abs(tau[keep]).tolist())
            scale = math.fsum(np.abs(tau).ravel().tolist()) / kept if rescale and kept != 0 else 1.0
            return np.where(keep, tau * scale, 0.0), keep

        def ties(parts, weights):
            p = [w * m for w, m in zip(weights, parts)]
            s = sum(p)
            pos = sum(np.where(x > 0, x, 0.0) for x in p)
            neg = sum(np.where(x < 0, x, 0.0) for x in p)
            wpos = sum(np.where(x > 0, w, 0.0) for w, x in zip(weights, p))
            wneg = sum(np.where(x < 0, w, 0.0) for w, x in zip(weights, p))
            return np.where(s > 0, pos / np.where(wpos == 0, 1, wpos), np.where(s < 0, neg / np.where(wneg == 0, 1, wneg), 0.0))

        g = torch.Generator().manual_seed(29)
        names = ["dl-base", "dl-a", "dl-b"]
        shapes = {"model.layers.0.w": (50, 9), "model.layers.0.conv": (4, 6, 3), "lm_head.weight": (77,),
                  "model.norm.weight": (7, 1)}
        sds = {}
        for n in names:
            sd = {k: torch.randn(*s, generator=g) for k, s in shapes.items()}
            # equal magnitudes: ranks break ties by position
            sd["model.layers.0.w"][3, :4] = 0.5
            pg_soup.save_state_dict(self.conn, sd, n, chunk_elems=100)
            pg_soup.save_state_dict(self.conn, sd, n + "-7", chunk_elems=7)
            sds[n] = {k: v.numpy().astype(np.float64) for k, v in sd.items()}
        B, A, Bb = (sds[n] for n in names)
        for method in ("della", "della_linear"):
            cfg = {"merge_method": method, "base_model": "dl-base",
                   "models": [{"model": "dl-a", "parameters": {"weight": 1.0, "density": 0.6, "epsilon": 0.2}},
                              {"model": "dl-b", "parameters": {"weight": 0.5, "density": 0.3}}],
                   "parameters": {"lambda": 0.8, "seed": 11}}
            pg_soup.merge_config(self.conn, method + "-soup", cfg)
            got = pg_soup.load_state_dict(self.conn, method + "-soup", framework="numpy")
            cfg7 = json.loads(json.dumps(cfg).replace('"dl-base"', '"dl-base-7"').replace('"dl-a"', '"dl-a-7"')
                              .replace('"dl-b"', '"dl-b-7"'))
            pg_soup.merge_config(self.conn, method + "-soup-7", cfg7)
            got7 = pg_soup.load_state_dict(self.conn, method + "-soup-7", framework="numpy")
            for k, v in got.items():
                ma, keep_a = della(A[k] - B[k], k, 1, 11, 0.6, 0.2)
                mb, _ = della(Bb[k] - B[k], k, 2, 11, 0.3, 0.15)
                mixed = ties([ma, mb], [1.0, 0.5]) if method == "della" else 1.0 * ma + 0.5 * mb
                ref = B[k] + 0.8 * mixed
                ulp = np.spacing(np.abs(ref).astype(np.float32)).astype(np.float64)
                err = np.abs(v.astype(np.float64) - ref)
                self.assertTrue(np.all(err <= ulp), (method, k, err.max()))
                # chunking never changes a draw
                self.assertEqual(v.tobytes(), got7[k].tobytes(), (method, k))
                # something was dropped, and not everything
                if v.size > 20:
                    self.assertTrue(0 < keep_a.mean() < 1, (k, keep_a.mean()))
        # the keep probability rises with the rank: on a 1 x 20000 row at
        # density 0.5, epsilon 0.3 the bottom tenth keeps p = 0.20..0.26 of its
        # entries, the top tenth 0.74..0.80 (2000 draws each: sd 0.01)
        sd = {"w": torch.randn(1, 20000, generator=g)}
        pg_soup.save_state_dict(self.conn, sd, "dl-row")
        pg_soup.save_state_dict(self.conn, {"w": torch.zeros(1, 20000)}, "dl-zero")
        pg_soup.merge(self.conn, "dl-row-della", "della_linear", ["dl-row"], base="dl-zero",
                      density=0.5, epsilon=0.3, seed=5, rescale=False)
        v = pg_soup.load_state_dict(self.conn, "dl-row-della", framework="numpy")["w"].ravel()
        x = sd["w"].numpy().ravel()
        order = np.argsort(np.abs(x), kind="stable")
        kept = v[order] != 0
        self.assertTrue(0.19 < kept[:2000].mean() < 0.27, kept[:2000].mean())
        self.assertTrue(0.73 < kept[-2000:].mean() < 0.81, kept[-2000:].mean())
        self.assertTrue(np.array_equal(v[v != 0], x[v != 0]))   # no rescale: kept entries as they were
        with self.assertRaises(SoupError) as cm:
            pg_soup.merge(self.conn, "dl-bad", "della", ["dl-row"], base="dl-zero", density=0.1, epsilon=0.2, seed=5)
        self.assertEqual(cm.exception.sqlstate, "22023")

    def test_metrics_and_training_helper(self):
        n = pg_soup.log_metrics(self.conn, "py-run", 10, {"loss": np.float32(2.5), "acc": 0.75},
                                tokens=1000)
        self.assertEqual(n, 2)
        self.assertEqual(self.q("SELECT name, value, tokens FROM soup.metrics WHERE run = 'py-run' "
                                "ORDER BY name"), [("acc", 0.75, 1000), ("loss", 2.5, 1000)])
        net = torch.nn.Linear(3, 2)
        logger = pg_soup.CheckpointLogger(self.conn, "py-loop", every=2, ema_decay=0.5)
        states = {}
        for step in range(1, 6):
            with torch.no_grad():
                net.weight.add_(0.25)
            states[step] = {k: v.clone() for k, v in net.state_dict().items()}
            logger.step(step, net, {"loss": 1.0 / step}, last=(step == 5))
        self.assertEqual(logger.saved, ["py-loop/step-2", "py-loop/step-4", "py-loop/step-5"])
        self.assertEqual(self.q("SELECT count(*) FROM soup.metrics WHERE run = 'py-loop'"), [(5,)])
        self.assertEqual(self.q("SELECT recipe->'steps' FROM soup.models WHERE name = 'py-loop/ema'"),
                         [([2, 4, 5],)])
        ema = pg_soup.load_state_dict(self.conn, "py-loop/ema")["weight"].double()
        ref = states[2]["weight"].double()
        for s in (4, 5):
            ref = 0.5 * ref + 0.5 * states[s]["weight"].double()
        self.assertTrue(torch.allclose(ema, ref, rtol=0, atol=1e-6))


class Folders(Base):
    def make_folder(self, name, weights_from, files):
        d = os.path.join(self.tmp, name)
        os.makedirs(d)
        for src, dst in weights_from:
            shutil.copyfile(src, os.path.join(d, dst))
        for fname, data in files.items():
            with open(os.path.join(d, fname), "wb") as f:
                f.write(data)
        return d

    def assert_same_folder(self, a, b, weights_name="model.safetensors"):
        self.assertEqual(sorted(os.listdir(a)), sorted(os.listdir(b)))
        for name in os.listdir(a):
            with open(os.path.join(a, name), "rb") as f1, open(os.path.join(b, name), "rb") as f2:
                self.assertEqual(f1.read(), f2.read(), name)

    def test_folder_round_trip(self):
        files = {"config.json": json.dumps({"model_type": "llama", "hidden_size": 8}).encode(),
                 "tokenizer.json": b'{"version": "1.0", "added_tokens": []}',
                 "generation_config.json": b'{"do_sample": false}',
                 "README.md": "caf\u00e9 \u2013 a model\n".encode(),
                 "special_tokens_map.json": b"{}", "merges.txt": bytes(range(256))}
        src = self.make_folder("llama", [(os.path.join(FLUX, "non_sharded", "model.with_metadata.safetensors"),
                                          "model.safetensors")], files)
        os.symlink(os.path.join(src, "README.md"), os.path.join(src, "LINK.md"))
        pg_soup.import_directory(self.conn, src, "py-folder", run="py", step=3)
        self.assertEqual(self.q("SELECT config->>'model_type' FROM soup.configs WHERE model = 'py-folder'"),
                         [("llama",)])
        self.assertEqual(self.q("SELECT count(*), count(json) FROM soup.files WHERE model = 'py-folder'"),
                         [(7, 4)])
        out = os.path.join(self.tmp, "llama-out")
        written = pg_soup.export_directory(self.conn, "py-folder", out)
        self.assertIn("model.safetensors", written)
        os.unlink(os.path.join(src, "LINK.md"))
        shutil.copyfile(os.path.join(src, "README.md"), os.path.join(src, "LINK.md"))
        self.assert_same_folder(src, out)        # weights bit for bit, files byte for byte

    def test_sharded_and_adapter_folders(self):
        # a sharded checkpoint (reference safetensors + huggingface_hub's sharding)
        src = os.path.join(self.tmp, "sharded")
        shutil.copytree(os.path.join(FLUX, "sharded"), src)
        with open(os.path.join(src, "config.json"), "w") as f:
            f.write('{"architectures": ["X"]}')
        pg_soup.import_directory(self.conn, src, "py-sharded")
        out = os.path.join(self.tmp, "sharded-out")
        pg_soup.export_directory(self.conn, "py-sharded", out)
        self.assertEqual(sorted(os.listdir(out)), ["config.json", "model.safetensors"])
        got, _ = read_safetensors(os.path.join(out, "model.safetensors"))
        ref = {}
        for fname in os.listdir(src):
            if fname.endswith(".safetensors"):
                ref.update(read_safetensors(os.path.join(src, fname))[0])
        self.assertEqual(got, ref)
        # a PEFT adapter folder: adapter_model.safetensors keeps its name
        for ck in ("checkpoint-230", "checkpoint-2300"):
            pg_soup.import_directory(self.conn, os.path.join(PEFT, ck), "py-" + ck)
            out = os.path.join(self.tmp, ck)
            pg_soup.export_directory(self.conn, "py-" + ck, out)
            self.assert_same_folder(os.path.join(PEFT, ck), out)
        # a merge takes its base's files (or its first model's) and says so
        pg_soup.merge(self.conn, "py-adapter-avg", "avg", ["py-checkpoint-2300", "py-checkpoint-230"])
        self.assertEqual(self.q("SELECT recipe->>'files_from' FROM soup.models WHERE name = 'py-adapter-avg'"),
                         [("py-checkpoint-2300",)])
        out = os.path.join(self.tmp, "avg")
        pg_soup.export_directory(self.conn, "py-adapter-avg", out)
        self.assertEqual(sorted(os.listdir(out)), ["adapter_config.json", "adapter_model.safetensors"])
        with open(os.path.join(out, "adapter_config.json"), "rb") as f1, \
                open(os.path.join(PEFT, "checkpoint-2300", "adapter_config.json"), "rb") as f2:
            self.assertEqual(f1.read(), f2.read())

    def test_folder_refusals_leave_nothing(self):
        w = [(os.path.join(FLUX, "non_sharded", "model.safetensors"), "model.safetensors")]
        sub = self.make_folder("with-subdir", w, {"config.json": b"{}"})
        os.mkdir(os.path.join(sub, "onnx"))
        big = self.make_folder("with-big", w, {})
        with open(os.path.join(big, "huge.bin"), "wb") as f:
            f.truncate(64 * 1024 * 1024 + 1)
        none = self.make_folder("no-weights", [], {"config.json": b"{}"})
        bad = self.make_folder("bad-weights", [], {"model.safetensors": struct.pack("<Q", 2) + b"{}" + b"x"})
        for d, state in ((sub, "22023"), (big, "54000"), (none, "58P01"), (bad, "22P04")):
            with self.assertRaises(SoupError) as e:
                pg_soup.import_directory(self.conn, d, "py-refused")
            self.assertEqual(e.exception.sqlstate, state, str(e.exception))
            self.assertEqual(self.rows_of("py-refused"), (0, 0, 0))
        self.assertEqual(self.q("SELECT count(*) FROM soup.model_files f LEFT JOIN soup.models m "
                                "ON m.id = f.model_id WHERE m.id IS NULL"), [(0,)])


class Plots(Base):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        admin = psycopg2.connect(ADMIN_DSN)
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS public.cbs_data, public.chin_raw")
            cur.execute("CREATE TABLE public.cbs_data (model text, params_m float8, target float8, "
                        "chin_steps float8, seq_len int, batch_seqs float8, batch_tokens float8, steps float8)")
            with open(os.path.join(DATA, "zhang2024_cbs_steps_to_target.csv")) as f:
                cur.copy_expert("COPY public.cbs_data FROM STDIN (FORMAT csv, HEADER)", f)
            cur.execute("CREATE TABLE public.chin_raw (x float8, y float8, color text, n float8, "
                        "flops float8, hex text, loss float8)")
            with open(os.path.join(DATA, "chinchilla_svg_extracted_data.csv")) as f:
                cur.copy_expert("COPY public.chin_raw FROM STDIN (FORMAT csv, HEADER)", f)
            cur.execute("GRANT SELECT ON public.cbs_data, public.chin_raw TO PUBLIC")
        admin.close()

    def svg_text(self, path):
        root = ET.parse(path).getroot()
        return [t for t in ("".join(e.itertext()) for e in root.iter("{http://www.w3.org/2000/svg}text")) if t]

    def cli(self, *args):
        env = dict(os.environ)
        out = subprocess.run([sys.executable, "-m", "pg_soup", "plot", *args, "--dsn", DSN],
                             capture_output=True, text=True, env=env, cwd=self.tmp)
        self.assertEqual(out.returncode, 0, out.stderr)
        return json.loads(out.stdout)

    def test_cbs_plot_claims_the_published_fit(self):
        svg = os.path.join(self.tmp, "cbs.svg")
        res = self.cli("cbs", "--query", "SELECT model, batch_seqs, steps FROM public.cbs_data "
                       "ORDER BY params_m, batch_seqs", "-o", svg)
        # Zhang et al.'s fits as ../shared/data/README.md gives them (scipy curve_fit)
        published = {"85M": (1293.83, 2.83426e6, 745.32), "151M": (1752.42, 5.67748e6, 955.16),
                     "302M": (2095.35, 1.13833e7, 1393.73), "604M": (2459.93, 1.94497e7, 1888.52),
                     "1.2B": (3897.31, 4.33811e7, 2533.41)}
        texts = self.svg_text(svg)
        self.assertEqual(len(res["fits"]), 5)
        for f in res["fits"]:
            key = f["label"].split("-")[0]
            s_min, e_min, cbs = published[key]
            self.assertLess(abs(f["s_min"] / s_min - 1), 0.005, key)
            self.assertLess(abs(f["e_min"] / e_min - 1), 0.005, key)
            self.assertLess(abs(f["cbs"] / cbs - 1), 0.005, key)
            # the figure states these numbers
            line = [t for t in texts if t.startswith(f["label"] + ":")]
            self.assertEqual(len(line), 1, texts)
            nums = [float(x) for x in re.findall(r"=([0-9.e+-]+)", line[0])]
            self.assertEqual(len(nums), 3)
            for shown, value in zip(nums, (f["s_min"], f["e_min"], f["cbs"])):
                self.assertLess(abs(shown / value - 1), 1e-5)

    def test_chinchilla_plot_claims_the_published_fit(self):
        svg = os.path.join(self.tmp, "chin.svg")
        res = self.cli("chinchilla", "--query",
                       "SELECT n, flops / (6 * n), loss FROM public.chin_raw WHERE loss < "
                       "(SELECT loss FROM public.chin_raw ORDER BY loss DESC OFFSET 4 LIMIT 1)",
                       "--budget", "1e23", "-o", svg)
        fit = res["fit"]
        self.assertEqual(fit["n"], 240)
        # Besiroglu et al. 2024 (Epoch AI's replication): E 1.8169, alpha 0.3478, beta 0.3659
        for k, v in (("e", 1.8169), ("alpha", 0.3478), ("beta", 0.3659)):
            self.assertLess(abs(fit[k] / v - 1), 0.005, k)
        self.assertLess(abs(6 * fit["n_opt"] * fit["d_opt"] / 1e23 - 1), 1e-9)
        law = [t for t in self.svg_text(svg) if t.startswith("fit along fixed N")]
        self.assertEqual(len(law), 1)
        nums = [float(x) for x in re.findall(r"[0-9]+\.?[0-9]*(?:e[+-]?[0-9]+)?", law[0].split("L =")[1])]
        shown = dict(zip(("e", "a", "alpha", "b", "beta"), nums))
        for k in shown:
            self.assertLess(abs(shown[k] / fit[k] - 1), 1e-5, k)

    def test_run_plot_marks_checkpoints(self):
        for step in range(0, 50, 5):
            pg_soup.log_metrics(self.conn, "py-plot-run", step, {"loss": 3.0 / (1 + step)})
        for step in (10, 30):
            pg_soup.save_state_dict(self.conn, {"w": torch.zeros(2)}, "py-plot-run/%d" % step,
                                    run="py-plot-run", step=step)
        png = os.path.join(self.tmp, "run.png")
        res = self.cli("run", "--run", "py-plot-run", "--metric", "loss", "-o", png)
        self.assertEqual(res["points"], 10)
        self.assertEqual([(c["step"], c["value"]) for c in res["checkpoints"]],
                         [(10, 3.0 / 11), (30, 3.0 / 31)])
        with open(png, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        svg = os.path.join(self.tmp, "run.svg")
        self.cli("run", "--run", "py-plot-run", "--metric", "loss", "-o", svg)
        self.assertIn("checkpoints (2)", self.svg_text(svg))


class Example(Base):
    def test_digits_example_runs_and_its_soups_work(self):
        ex = os.path.join(ROOT, "python", "examples", "digits_soup.py")
        out = subprocess.run([sys.executable, ex, DSN], capture_output=True, text=True, cwd=self.tmp)
        self.assertEqual(out.returncode, 0, out.stderr)
        acc = {m.group(1).strip(): (float(m.group(2)), float(m.group(3)))
               for m in re.finditer(r"^(.*?)\s+([01]\.[0-9]{4})\s+([01]\.[0-9]{4})$", out.stdout, re.M)}
        self.assertEqual(len(acc), 8, out.stdout)
        # every model, soups included, classifies digits (chance is 0.1)
        for name, (va, te) in acc.items():
            self.assertGreater(te, 0.9, name)
        # the uniform soup is the float64 mean of the final checkpoints, rounded once
        finals = ["digits/ft-%d/step-240" % i for i in (1, 2, 3, 4)]
        sds = [pg_soup.load_state_dict(self.conn, f, framework="numpy") for f in finals]
        soup = pg_soup.load_state_dict(self.conn, "digits/uniform", framework="numpy")
        for k in soup:
            ref = sum(sd[k].astype(np.float64) for sd in sds) / 4
            ulp = np.spacing(np.abs(ref).astype(np.float32)).astype(np.float64)
            self.assertTrue(np.all(np.abs(soup[k] - ref) <= 0.5 * ulp * (1 + 1e-6)), k)


class Installed(unittest.TestCase):
    def test_installed_package_is_this_tree(self):
        here = os.path.join(ROOT, "python", "pg_soup")
        inst = os.path.dirname(pg_soup.__file__)
        self.assertNotEqual(os.path.realpath(here), os.path.realpath(inst),
                            "tests must import the installed package")
        for name in sorted(os.listdir(here)):
            if name.endswith(".py"):
                with open(os.path.join(here, name), "rb") as a, open(os.path.join(inst, name), "rb") as b:
                    self.assertEqual(a.read(), b.read(), name)


if __name__ == "__main__":
    unittest.main()
