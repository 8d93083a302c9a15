"""Hugging Face model folders in and out: the weights and every other file.

A folder holds model.safetensors (or shards listed in
model.safetensors.index.json) beside config.json, tokenizer files, a README
and so on.  The weights become the model's chunks; the other regular files
are kept, bytes as they were, in soup.model_files.
"""
import json
import os
import stat

from . import safetensors
from ._db import transaction, reading, model_id
from .errors import (SoupError, INVALID_FILE, INVALID_PARAMETER_VALUE,
                     PROGRAM_LIMIT_EXCEEDED, IO_ERROR)
from .state_dict import store_tensors, COPY_SIZE

WEIGHTS = "model.safetensors"
INDEX = "model.safetensors.index.json"
MAX_FILE_BYTES = 64 * 1024 * 1024     # the CHECK on soup.model_files
UNDEFINED_FILE = "58P01"
DUPLICATE_FILE = "58P02"


def _plain_name(name, where):
    if name in ("", ".", "..") or "/" in name or "\x00" in name:
        raise SoupError('%s names "%s", which is not a plain file name' % (where, name),
                        INVALID_FILE)
    return name


def _read_index(path):
    with open(path, "rb") as f:
        try:
            idx = json.loads(f.read().decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise SoupError("%s: not a JSON index (%s)" % (path, e), INVALID_FILE)
    wm = idx.get("weight_map") if isinstance(idx, dict) else None
    if not isinstance(wm, dict) or not all(isinstance(v, str) for v in wm.values()):
        raise SoupError('%s: "weight_map" must map tensor names to file names' % path,
                        INVALID_FILE)
    shards = []
    for f in wm.values():               # first-seen order, as the server reads it
        if f not in shards:
            shards.append(_plain_name(f, path))
    return idx, wm, shards


def _weights(folder):
    """(files, index or None, names of the weight files)."""
    index_path = os.path.join(folder, INDEX)
    if os.path.exists(index_path):
        idx, wm, shards = _read_index(index_path)
        files = [safetensors.File(os.path.join(folder, s)) for s in shards]
        seen = {}
        for s, f in zip(shards, files):
            for t in f.tensors:
                if t.name in seen:
                    raise SoupError('tensor "%s" is in both %s and %s' % (t.name, seen[t.name], s),
                                    INVALID_FILE)
                if wm.get(t.name) != s:
                    raise SoupError('%s holds tensor "%s", which the index places in %s'
                                    % (s, t.name, wm.get(t.name)), INVALID_FILE)
                seen[t.name] = s
        missing = set(wm) - set(seen)
        if missing:
            raise SoupError('the index lists tensor "%s", which no shard holds'
                            % sorted(missing)[0], INVALID_FILE)
        return files, idx, set(shards) | {INDEX}
    if os.path.exists(os.path.join(folder, WEIGHTS)):
        return [safetensors.File(os.path.join(folder, WEIGHTS))], None, {WEIGHTS}
    # one weights file under another name (adapter_model.safetensors of a
    # PEFT adapter, diffusion_pytorch_model.safetensors, ...)
    cands = sorted(n for n in os.listdir(folder) if n.endswith(".safetensors"))
    if len(cands) == 1:
        return [safetensors.File(os.path.join(folder, cands[0]))], None, {cands[0]}
    raise SoupError("%s holds neither %s nor %s%s" % (
        folder, WEIGHTS, INDEX, " (and %d other .safetensors files: which?)" % len(cands)
        if cands else ""), UNDEFINED_FILE)


def _other_files(folder, weight_names, max_bytes):
    out = []
    for name in sorted(os.listdir(folder)):
        if name in weight_names:
            continue
        path = os.path.join(folder, name)
        st = os.stat(path)            # a symbolic link counts as what it points to
        if not stat.S_ISREG(st.st_mode):
            raise SoupError('%s is not a regular file' % path, INVALID_PARAMETER_VALUE,
                            hint="A model folder holds files only; move other entries out.")
        if st.st_size > max_bytes:
            raise SoupError('%s is %d bytes, over the limit of %d for a file beside the weights'
                            % (path, st.st_size, max_bytes), PROGRAM_LIMIT_EXCEEDED)
        out.append(name)
    return out


def import_directory(conn, path, model, run=None, step=None, commit=True, verify=True):
    """Import a model folder: its weights (single or sharded safetensors) as
    model `model`, and every other regular file beside them.  One
    transaction; returns the model id."""
    if not os.path.isdir(path):
        raise SoupError("%s is not a directory" % path, UNDEFINED_FILE)
    try:
        files, idx, weight_names = _weights(path)
        others = _other_files(path, weight_names, MAX_FILE_BYTES)
    except OSError as e:
        raise SoupError("could not read %s: %s" % (e.filename or path, e.strerror), IO_ERROR)
    tensors = [(t.name, t.dtype, t.shape, f.flat(t)) for f in files for t in f.tensors]
    metadata = {}
    for f in files:
        for k, v in (f.metadata or {}).items():
            metadata.setdefault(k, v)
    has_meta = any(f.metadata is not None for f in files)
    source = {"format": "safetensors", "path": os.path.abspath(path),
              "client": "pg_soup.python", "folder": True}
    if idx is None and os.path.basename(files[0].path) != WEIGHTS:
        source["weights_file"] = os.path.basename(files[0].path)
    if idx is not None:
        source["shards"] = [os.path.basename(f.path) for f in files]
        if isinstance(idx.get("metadata"), dict):
            source["index_metadata"] = idx["metadata"]
    header = files[0].raw_header if idx is None else None
    with transaction(conn, commit) as cur:
        new_id = store_tensors(cur, model, tensors, run, step,
                               json.dumps(metadata) if has_meta else None, source,
                               header=header, verify=verify)
        for name in others:
            with open(os.path.join(path, name), "rb") as fh:
                data = fh.read()
            cur.execute("INSERT INTO soup.model_files (model_id, name, bytes) VALUES (%s, %s, %s)",
                        (new_id, name, data))
        return new_id


class _FileSink:
    def __init__(self, fh):
        self.fh = fh
        self.buf = bytearray()
        self.header_done = False

    def write(self, data):
        # rows of one bytea column: int16 1, int32 len, bytes; the data
        # after the 19-byte COPY header
        self.buf += data
        b = self.buf
        pos = 0
        if not self.header_done:
            if len(b) < 19:
                return
            pos = 19
            self.header_done = True
        while len(b) - pos >= 2:
            nf = int.from_bytes(b[pos:pos + 2], "big", signed=True)
            if nf == -1:
                pos += 2
                break
            if len(b) - pos < 6:
                break
            n = int.from_bytes(b[pos + 2:pos + 6], "big", signed=True)
            if len(b) - pos < 6 + n:
                break
            self.fh.write(memoryview(b)[pos + 6:pos + 6 + n])
            pos += 6 + n
        del b[:pos]


def export_directory(conn, model, path):
    """Write model `model` as a folder: model.safetensors (the server's
    export, bit for bit) and every file kept with the model, byte for byte.
    The folder is created if needed; existing files of the same names are
    replaced.  Returns the list of file names written."""
    os.makedirs(path, exist_ok=True)
    written = []
    with reading(conn) as cur:
        mid = model_id(cur, model)
        cur.execute("SELECT name FROM soup.model_files WHERE model_id = %s ORDER BY name", (mid,))
        names = [r[0] for r in cur.fetchall()]
        for name in names:
            _plain_name(name, "soup.model_files")
            cur.execute("SELECT bytes FROM soup.model_files WHERE model_id = %s AND name = %s",
                        (mid, name))
            _write_atomic(os.path.join(path, name), bytes(cur.fetchone()[0]))
            written.append(name)
        # the header the server writes, then every chunk's bytes in order
        cur.execute("SELECT soup.safetensors_header(%s)", (model,))
        header = bytes(cur.fetchone()[0])
        weights = _weights_name(cur, mid)
        if weights in names:
            raise SoupError('model "%s" keeps a file named %s, the name of its weights'
                            % (model, weights), DUPLICATE_FILE)
        target = os.path.join(path, weights)
        tmp = target + ".partial"
        with open(tmp, "wb") as fh:
            fh.write(header)
            cur.copy_expert("COPY (SELECT soup.bytes(c.data) FROM soup.chunks c "
                            "JOIN soup.tensors t ON t.model_id = c.model_id AND t.name = c.tensor "
                            "WHERE c.model_id = %d ORDER BY t.ordinal, c.chunk) "
                            "TO STDOUT (FORMAT binary)" % mid, _FileSink(fh), size=COPY_SIZE)
            size = fh.tell()
        expected = 8 + int.from_bytes(header[:8], "little")
        expected += _data_len(header)
        if size != expected:
            os.unlink(tmp)
            raise SoupError("export of %s wrote %d bytes, expected %d" % (model, size, expected),
                            "XX001")
        os.replace(tmp, target)
        written.append(weights)
    return written


def _weights_name(cur, mid):
    """The weights' file name: as imported, or for a merge as the model its
    files came from was imported; model.safetensors otherwise."""
    cur.execute("SELECT coalesce(m.source ->> 'weights_file', f.source ->> 'weights_file') "
                "FROM soup.models m LEFT JOIN soup.models f ON f.name = m.recipe ->> 'files_from' "
                "WHERE m.id = %s", (mid,))
    name = cur.fetchone()[0]
    if name is None:
        return WEIGHTS
    return _plain_name(name, "the model's source")


def _data_len(header):
    head = json.loads(header[8:].decode("utf-8"))
    return max([v["data_offsets"][1] for k, v in head.items() if k != "__metadata__"] or [0])


def _write_atomic(target, data):
    tmp = target + ".partial"
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, target)
