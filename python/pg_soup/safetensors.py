"""Reading safetensors headers in Python, with the checks the server makes.

Only headers are parsed here; tensor bytes are streamed from a read-only
memory map of the file.  A header is refused unless it describes exactly
the file: known dtypes, shapes of non-negative integers, data offsets that
match the shape and tile the data section with no gap or overlap.
"""
import json
import os
import struct

import numpy as np

from . import _wire
from .errors import SoupError, INVALID_FILE, PROGRAM_LIMIT_EXCEEDED

MAX_HEADER = 100 * 1000 * 1000       # safetensors' own limit


class Tensor:
    __slots__ = ("name", "dtype", "shape", "begin", "end")

    def __init__(self, name, dtype, shape, begin, end):
        self.name, self.dtype, self.shape, self.begin, self.end = name, dtype, shape, begin, end


class File:
    """A validated safetensors file: raw header bytes, metadata, tensors in
    data order and a memory map of the data section."""

    def __init__(self, path):
        self.path = path
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                self._fail("shorter than the 8-byte header length")
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER:
                raise SoupError('%s: header of %d bytes is over the limit of %d'
                                % (path, n, MAX_HEADER), PROGRAM_LIMIT_EXCEEDED)
            if 8 + n > size:
                self._fail("header length %d runs past the end of the file" % n)
            self.raw_header = f.read(n)
        self.header_len = n
        self.metadata, self.tensors = self._parse(self.raw_header)
        data_len = size - 8 - n
        end = self.tensors[-1].end if self.tensors else 0
        if end != data_len:
            self._fail("the tensors cover %d bytes of a %d-byte data section" % (end, data_len))
        self.data = (np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
                     if data_len > 0 else np.empty(0, dtype=np.uint8))

    def _fail(self, what):
        raise SoupError("%s: not a valid safetensors file: %s" % (self.path, what), INVALID_FILE)

    def _parse(self, raw):
        def no_duplicates(pairs):
            d = {}
            for k, v in pairs:
                if k in d:
                    self._fail('duplicate key "%s" in the header' % k)
                d[k] = v
            return d
        try:
            head = json.loads(raw.decode("utf-8"), object_pairs_hook=no_duplicates)
        except (UnicodeDecodeError, ValueError) as e:
            self._fail("header is not UTF-8 JSON (%s)" % e)
        if not isinstance(head, dict):
            self._fail("header is not a JSON object")
        metadata = head.pop("__metadata__", None)
        if metadata is not None and not (isinstance(metadata, dict) and all(
                isinstance(v, str) for v in metadata.values())):
            self._fail('"__metadata__" is not an object of strings')
        tensors = []
        for name, e in head.items():
            if name == "":
                self._fail("a tensor with an empty name")
            if not isinstance(e, dict) or set(e) != {"dtype", "shape", "data_offsets"}:
                self._fail('tensor "%s" needs exactly dtype, shape and data_offsets' % name)
            dt = _wire.BY_ST_NAME.get(e["dtype"]) if isinstance(e["dtype"], str) else None
            if dt is None:
                self._fail('tensor "%s" has unknown dtype %r' % (name, e["dtype"]))
            shape, offs = e["shape"], e["data_offsets"]
            if not isinstance(shape, list) or not all(
                    type(s) is int and s >= 0 for s in shape):
                self._fail('tensor "%s" has a bad shape %r' % (name, shape))
            if not (isinstance(offs, list) and len(offs) == 2
                    and all(type(o) is int and o >= 0 for o in offs) and offs[0] <= offs[1]):
                self._fail('tensor "%s" has bad data_offsets %r' % (name, offs))
            numel = 1
            for s in shape:
                numel *= s
            if (offs[1] - offs[0]) != numel * dt.size:
                self._fail('tensor "%s": data_offsets span %d bytes, its shape needs %d'
                           % (name, offs[1] - offs[0], numel * dt.size))
            tensors.append(Tensor(name, dt, tuple(shape), offs[0], offs[1]))
        tensors.sort(key=lambda t: (t.begin, t.end))
        pos = 0
        for t in tensors:
            if t.begin != pos:
                self._fail('tensor "%s" starts at %d, not at %d (gap or overlap)'
                           % (t.name, t.begin, pos))
            pos = t.end
        return metadata, tensors

    def flat(self, t):
        return self.data[t.begin:t.end]
