"""Minimal safetensors reader and writer for pg_soup's scripts and tests.

Written from the format's description (8-byte little-endian header length,
compact JSON header padded with spaces to 8 bytes, packed data), with numpy,
so that files made here are an independent reference for pg_soup.
"""
import json
import struct

import numpy as np

NP_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4",
             "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "u1"}


def write(path, tensors, metadata=None):
    """tensors: list of (name, dtype, shape, raw little-endian bytes)."""
    header, data = {}, bytearray()
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, blob in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape),
                        "data_offsets": [len(data), len(data) + len(blob)]}
        data += blob
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + bytes(data))


def read(path):
    """Returns (metadata, {name: (dtype, shape, raw bytes)})."""
    with open(path, "rb") as f:
        blob = f.read()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", None)
    base = 8 + n
    return meta, {k: (v["dtype"], v["shape"],
                      blob[base + v["data_offsets"][0]:base + v["data_offsets"][1]])
                  for k, v in header.items()}


def array(entry):
    """A numpy array of a (dtype, shape, bytes) entry (BF16 widened to float32)."""
    dtype, shape, raw = entry
    if dtype == "BF16":
        u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return u.view(np.float32).reshape(shape)
    return np.frombuffer(raw, dtype=NP_DTYPES[dtype]).reshape(shape)
