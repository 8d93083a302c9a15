"""save_state_dict and load_state_dict: tensors in and out over COPY.

No file on either side: the tensors stream into soup.chunks as COPY BINARY
rows in soup.tensor's wire form, chunked as a server import chunks them, and
come back the same way.  The bits never pass through a conversion.
"""
import json
import struct
import sys

import numpy as np

from . import _wire
from ._db import transaction, reading, server_chunk_elems, model_id
from .errors import (SoupError, DATATYPE_MISMATCH, DUPLICATE_OBJECT,
                     INVALID_PARAMETER_VALUE, DATA_CORRUPTED)

COPY_CHUNKS = ("COPY soup.chunks (model_id, tensor, chunk, data) "
               "FROM STDIN (FORMAT binary)")
COPY_SIZE = 1 << 24


# ---- Python values -> (dtype, shape, bytes) ----

def _torch():
    return sys.modules.get("torch")


def _from_torch(name, t):
    torch = _torch()
    t = t.detach()
    if t.layout != torch.strided:
        raise SoupError('tensor "%s" is %s: only dense tensors can be stored'
                        % (name, t.layout), DATATYPE_MISMATCH)
    if t.device.type != "cpu":
        t = t.cpu()
    if t.is_conj():
        t = t.resolve_conj()
    t = t.contiguous()           # views, transposes, slices: copied into order
    tname = str(t.dtype).replace("torch.", "")
    dt = next((d for d in _wire.DTYPES if d.torch == tname), None)
    if dt is None:
        raise SoupError('tensor "%s" has dtype %s, which pg_soup does not store'
                        % (name, t.dtype), DATATYPE_MISMATCH)
    shape = tuple(t.shape)
    if dt.numpy is None:         # bf16, f8: no numpy dtype; same-size bits
        bits = torch.int16 if dt.size == 2 else torch.uint8
        arr = t.reshape(-1).view(bits).numpy()
    else:
        arr = t.numpy()
    return dt, shape, arr


def _bf16_bits(name, arr):
    if arr.dtype == np.uint16:
        return arr
    if arr.dtype != np.float32:
        raise SoupError('tensor "%s": bf16 from numpy takes uint16 bits or float32 '
                        'values, not %s' % (name, arr.dtype), DATATYPE_MISMATCH)
    bits = np.ascontiguousarray(arr, dtype="<f4").view("<u4")
    if np.any(bits & 0xFFFF):
        raise SoupError('tensor "%s": float32 values that bf16 cannot hold exactly'
                        % name, INVALID_PARAMETER_VALUE,
                        hint="Round them to bfloat16 first; pg_soup stores bits, it does not round.")
    return (bits >> 16).astype("<u2")


def _from_numpy(name, value, override):
    arr = np.asarray(value)
    if override is not None:
        dt = _wire.BY_NAME.get(override)
        if dt is None:
            raise SoupError('tensor "%s": unknown dtype "%s"' % (name, override),
                            INVALID_PARAMETER_VALUE)
        if dt.name == "bf16":
            return dt, arr.shape, np.ascontiguousarray(_bf16_bits(name, arr))
        if dt.numpy is None:
            if arr.dtype != np.uint8:
                raise SoupError('tensor "%s": %s from numpy takes uint8 bits'
                                % (name, dt.name), DATATYPE_MISMATCH)
            return dt, arr.shape, np.ascontiguousarray(arr)
        if arr.dtype.newbyteorder("<") != dt.numpy:
            raise SoupError('tensor "%s" is %s, not %s' % (name, arr.dtype, dt.name),
                            DATATYPE_MISMATCH)
    dt = _wire.numpy_to_dtype(arr.dtype)
    if dt is None:
        raise SoupError('tensor "%s" has dtype %s, which pg_soup does not store'
                        % (name, arr.dtype), DATATYPE_MISMATCH)
    return dt, arr.shape, np.ascontiguousarray(arr, dtype=dt.numpy)


def _tensor_bytes(name, value, override=None):
    """(Dtype, shape, flat little-endian uint8 view) of one value."""
    torch = _torch()
    if torch is not None and isinstance(value, torch.Tensor):
        if override is not None:
            raise SoupError('tensor "%s": dtypes= applies to numpy arrays; a torch '
                            'tensor carries its dtype' % name, INVALID_PARAMETER_VALUE)
        dt, shape, arr = _from_torch(name, value)
    elif isinstance(value, np.ndarray) or np.isscalar(value):
        dt, shape, arr = _from_numpy(name, value, override)
    else:
        raise SoupError('tensor "%s" is a %s, not a torch tensor or numpy array'
                        % (name, type(value).__name__), DATATYPE_MISMATCH)
    flat = np.ascontiguousarray(arr).reshape(-1).view(np.uint8)
    numel = int(np.prod(shape, dtype=np.int64)) if len(shape) else 1
    assert flat.size == numel * dt.size
    return dt, tuple(int(s) for s in shape), flat


# ---- the COPY stream ----

class _Stream:
    """A file-like object whose read() yields the pieces of a COPY FROM STDIN
    one at a time (psycopg2's copy_expert sends each as one CopyData): bytes
    for FORMAT binary, text lines otherwise; end is the empty piece."""

    def __init__(self, pieces, end=b""):
        self._pieces = pieces
        self._end = end

    def read(self, size=-1):
        return next(self._pieces, self._end)


def _chunk_rows(model_id_, tensors, chunk_elems):
    yield _wire.copy_header()
    for name, dt, shape, flat in tensors:
        name_b = name.encode("utf-8")
        numel = flat.size // dt.size
        step = chunk_elems * dt.size
        for chunk, off in enumerate(range(0, numel, chunk_elems)):
            n = min(chunk_elems, numel - off)
            yield _wire.chunk_row_head(model_id_, name_b, chunk, dt.code, n, n * dt.size)
            yield flat[chunk * step: chunk * step + n * dt.size].tobytes()
    yield _wire.COPY_TRAILER


def _copy_text(s):
    return (s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
            .replace("\r", "\\r"))


def _check_name(name):
    if not isinstance(name, str):
        raise SoupError("tensor names must be strings, not %s" % type(name).__name__,
                        DATATYPE_MISMATCH)
    if name == "" or "\x00" in name:
        raise SoupError("tensor name %r is empty or holds a NUL" % name,
                        INVALID_PARAMETER_VALUE)


def _check_metadata(metadata):
    if metadata is None:
        return None
    if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise SoupError("metadata must map strings to strings (safetensors' __metadata__)",
                        INVALID_PARAMETER_VALUE)
    return json.dumps(metadata)


def store_tensors(cur, model, tensors, run=None, step=None, metadata_json=None,
                  source=None, header=None, chunk_elems=None, verify=True):
    """Write one model from (name, Dtype, shape, flat bytes) tuples: the catalog
    rows, then every chunk over one COPY.  Runs on cur's transaction."""
    cur.execute("SELECT 1 FROM soup.models WHERE name = %s", (model,))
    if cur.fetchone() is not None:
        raise SoupError('model "%s" already exists' % model, DUPLICATE_OBJECT)
    if chunk_elems is None:
        chunk_elems = server_chunk_elems(cur)
    elif not (isinstance(chunk_elems, int) and 0 < chunk_elems <= (1 << 27)):
        raise SoupError("chunk_elems must be an integer between 1 and 134217728",
                        INVALID_PARAMETER_VALUE)
    cur.execute("INSERT INTO soup.models (name, kind, run, step, metadata, source, header) "
                "VALUES (%s, 'checkpoint', %s, %s, %s::jsonb, %s::jsonb, %s) RETURNING id",
                (model, run, step, metadata_json,
                 json.dumps(source) if source is not None else None, header))
    new_id = cur.fetchone()[0]

    def lines():
        for ordinal, (name, dt, shape, flat) in enumerate(tensors):
            yield "%d\t%s\t%d\t%s\t{%s}\t%d\t%d\n" % (
                new_id, _copy_text(name), ordinal, dt.name,
                ",".join(str(s) for s in shape), flat.size // dt.size, chunk_elems)
    cur.copy_expert("COPY soup.tensors (model_id, name, ordinal, dtype, shape, numel, "
                    "chunk_elems) FROM STDIN", _Stream(lines(), ""))
    cur.copy_expert(COPY_CHUNKS, _Stream(_chunk_rows(new_id, tensors, chunk_elems)),
                    size=COPY_SIZE)
    if verify:
        cur.execute("SELECT tensor, chunk, problem FROM soup.verify(%s) LIMIT 1", (model,))
        bad = cur.fetchone()
        if bad is not None:
            raise SoupError('the stored model failed soup.verify: tensor "%s" chunk %s: %s'
                            % bad, DATA_CORRUPTED)
    return new_id


def save_state_dict(conn, state_dict, model, run=None, step=None, metadata=None,
                    dtypes=None, chunk_elems=None, commit=True, verify=True):
    """Store a dict of torch tensors or numpy arrays as model `model`.

    Every dtype pg_soup stores is accepted (f32, f64, f16, bf16, the integer
    dtypes, bool, complex64, and float8 as torch tensors); views and
    non-contiguous tensors are stored in row-major order, tensors that share
    storage are each stored in full.  numpy has no bfloat16: pass
    dtypes={name: "bf16"} with uint16 bits or exactly representable float32
    values.  metadata (str -> str) becomes the file's __metadata__ on export.
    One transaction (see commit); returns the new model's id.
    """
    if not isinstance(model, str) or model == "":
        raise SoupError("model must be a non-empty string", INVALID_PARAMETER_VALUE)
    if not hasattr(state_dict, "items"):
        raise SoupError("state_dict must be a mapping of names to tensors",
                        DATATYPE_MISMATCH)
    dtypes = dict(dtypes or {})
    tensors = []
    for name, value in state_dict.items():
        _check_name(name)
        dt, shape, flat = _tensor_bytes(name, value, dtypes.pop(name, None))
        tensors.append((name, dt, shape, flat))
    if dtypes:
        raise SoupError("dtypes= names tensors the state_dict does not have: %s"
                        % ", ".join(sorted(dtypes)), INVALID_PARAMETER_VALUE)
    meta = _check_metadata(metadata)
    source = {"format": "state_dict", "client": "pg_soup.python"}
    with transaction(conn, commit) as cur:
        return store_tensors(cur, model, tensors, run, step, meta, source,
                             chunk_elems=chunk_elems, verify=verify)


# ---- reading back ----

class _ChunkSink:
    """COPY BINARY rows (ordinal, chunk, data) written into flat buffers."""

    def __init__(self, tensors):
        self.tensors = tensors          # ordinal -> dict
        self.buf = bytearray()
        self.pos = 0
        self.header_seen = False
        self.done = False

    def write(self, data):
        self.buf += data
        self._parse()

    def _need(self, n):
        return len(self.buf) - self.pos >= n

    def _parse(self):
        b = self.buf
        if not self.header_seen:
            if not self._need(19):
                return
            if bytes(b[:11]) != _wire.COPY_SIGNATURE:
                raise SoupError("unexpected COPY header from the server", DATA_CORRUPTED)
            ext = struct.unpack_from(">i", b, 15)[0]
            if not self._need(19 + ext):
                return
            self.pos = 19 + ext
            self.header_seen = True
        while self._need(2):
            nf = struct.unpack_from(">h", b, self.pos)[0]
            if nf == -1:
                self.pos += 2
                self.done = True
                break
            if nf != 3 or not self._need(2 + 8 + 8 + 4):
                if nf != 3:
                    raise SoupError("unexpected row in the COPY stream", DATA_CORRUPTED)
                return
            p = self.pos + 2
            _, ordinal, _, chunk, dlen = struct.unpack_from(">iiiii", b, p)
            if not self._need(2 + 20 + dlen):
                return
            p += 20
            version, code, ndim = b[p], b[p + 1], b[p + 2]
            if version != _wire.WIRE_VERSION or ndim != 1:
                raise SoupError("unexpected chunk form in the COPY stream", DATA_CORRUPTED)
            length = struct.unpack_from(">i", b, p + 3)[0]
            self._store(ordinal, chunk, code, length, memoryview(b)[p + 7: p + dlen])
            self.pos = p + dlen
        if self.pos > (1 << 22) or self.pos == len(b):
            del b[:self.pos]
            self.pos = 0

    def _store(self, ordinal, chunk, code, length, data):
        t = self.tensors.get(ordinal)
        if t is None or code != t["dtype"].code:
            raise SoupError("a chunk of an unknown tensor or dtype in the COPY stream",
                            DATA_CORRUPTED)
        es = t["dtype"].size
        start = chunk * t["chunk_elems"]
        if length != len(data) // es or start + length > t["numel"] or len(data) != length * es:
            raise SoupError('chunk %d of tensor "%s" does not fit its shape'
                            % (chunk, t["name"]), DATA_CORRUPTED)
        t["flat"][start * es:(start + length) * es] = data
        t["seen"] += 1
        data.release()


def fetch_tensors(cur, model):
    """(name, Dtype, shape, flat uint8 array) of every tensor, in file order."""
    mid = model_id(cur, model)
    cur.execute("SELECT ordinal, name, dtype, shape, numel, chunk_elems, n_chunks "
                "FROM soup.tensors WHERE model_id = %s ORDER BY ordinal", (mid,))
    tensors = {}
    for ordinal, name, dtype, shape, numel, chunk_elems, n_chunks in cur.fetchall():
        dt = _wire.BY_NAME[dtype]
        tensors[ordinal] = dict(name=name, dtype=dt, shape=tuple(shape), numel=numel,
                                chunk_elems=chunk_elems, n_chunks=n_chunks, seen=0,
                                flat=np.empty(numel * dt.size, dtype=np.uint8))
    sink = _ChunkSink(tensors)
    cur.copy_expert("COPY (SELECT t.ordinal, c.chunk, c.data FROM soup.chunks c "
                    "JOIN soup.tensors t ON t.model_id = c.model_id AND t.name = c.tensor "
                    "WHERE c.model_id = %d ORDER BY t.ordinal, c.chunk) "
                    "TO STDOUT (FORMAT binary)" % mid, sink, size=COPY_SIZE)
    if not sink.done:
        raise SoupError("the COPY stream ended early", DATA_CORRUPTED)
    out = []
    for ordinal in sorted(tensors):
        t = tensors[ordinal]
        if t["seen"] != t["n_chunks"]:
            raise SoupError('tensor "%s" of model "%s" has %d of its %d chunks'
                            % (t["name"], model, t["seen"], t["n_chunks"]), DATA_CORRUPTED,
                            hint="Check the model with soup.verify.")
        out.append((t["name"], t["dtype"], t["shape"], t["flat"]))
    return out


def _to_numpy(name, dt, shape, flat, bf16):
    if dt.name == "bf16":
        bits = flat.view("<u2")
        if bf16 == "bits":
            return bits.reshape(shape)
        # bfloat16 is the top half of a float32: widening is exact
        return (bits.astype("<u4") << 16).view("<f4").reshape(shape)
    if dt.numpy is None:           # float8: the bits, one byte each
        return flat.reshape(shape)
    return flat.view(dt.numpy).reshape(shape)


def _to_torch(name, dt, shape, flat):
    torch = __import__("torch")
    tdtype = getattr(torch, dt.torch, None)
    if tdtype is None:
        raise SoupError('tensor "%s" is %s, which this torch (%s) has no dtype for'
                        % (name, dt.name, torch.__version__), DATATYPE_MISMATCH,
                        hint='Load it with framework="numpy".')
    if dt.numpy is None:
        base = torch.from_numpy(flat.view("<i2") if dt.size == 2 else flat)
        return base.view(tdtype).reshape(shape)
    return torch.from_numpy(flat.view(dt.numpy)).reshape(shape)


def load_state_dict(conn, model, framework="torch", bf16="float32"):
    """The tensors of `model` as a dict (in file order), bit for bit.

    framework="torch": torch tensors of the stored dtypes (bf16 as
    torch.bfloat16).  framework="numpy": numpy arrays; numpy has no bfloat16,
    so bf16 tensors come back as float32 holding exactly the same values
    (bf16="float32", the default) or as their uint16 bits (bf16="bits");
    float8 tensors come back as their uint8 bits.
    """
    if framework not in ("torch", "numpy"):
        raise SoupError('framework must be "torch" or "numpy", not %r' % (framework,),
                        INVALID_PARAMETER_VALUE)
    if bf16 not in ("float32", "bits"):
        raise SoupError('bf16 must be "float32" or "bits", not %r' % (bf16,),
                        INVALID_PARAMETER_VALUE)
    with reading(conn) as cur:
        tensors = fetch_tensors(cur, model)
    out = {}
    for name, dt, shape, flat in tensors:
        if framework == "torch":
            out[name] = _to_torch(name, dt, shape, flat)
        else:
            out[name] = _to_numpy(name, dt, shape, flat, bf16)
    return out
