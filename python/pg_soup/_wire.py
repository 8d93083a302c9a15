"""pg_soup's dtypes and the binary form of a chunk (src/tensor_wire.h).

A chunk travels over COPY (FORMAT binary) as soup.tensor's send/recv form:
a version byte, the dtype code, ndim (1 for a chunk), ndim big-endian int32
dimensions, then the elements packed little-endian as in safetensors.
"""
import struct

import numpy as np

WIRE_VERSION = 1
CHUNK_HEADER = struct.Struct(">BBBi")        # version, dtype, ndim=1, length
COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"


class Dtype:
    __slots__ = ("code", "name", "st_name", "size", "numpy", "torch")

    def __init__(self, code, name, st_name, size, numpy_dtype, torch_name):
        self.code = code
        self.name = name
        self.st_name = st_name
        self.size = size
        self.numpy = np.dtype(numpy_dtype) if numpy_dtype else None
        self.torch = torch_name

    def __repr__(self):
        return "Dtype(%s)" % self.name


# The codes are stored inside every chunk on disk (src/kernels/dtype.h).
DTYPES = [
    Dtype(1, "f32", "F32", 4, "<f4", "float32"),
    Dtype(2, "f64", "F64", 8, "<f8", "float64"),
    Dtype(3, "f16", "F16", 2, "<f2", "float16"),
    Dtype(4, "bf16", "BF16", 2, None, "bfloat16"),
    Dtype(10, "bool", "BOOL", 1, "?", "bool"),
    Dtype(11, "u8", "U8", 1, "u1", "uint8"),
    Dtype(12, "i8", "I8", 1, "i1", "int8"),
    Dtype(13, "i16", "I16", 2, "<i2", "int16"),
    Dtype(14, "u16", "U16", 2, "<u2", "uint16"),
    Dtype(15, "i32", "I32", 4, "<i4", "int32"),
    Dtype(16, "u32", "U32", 4, "<u4", "uint32"),
    Dtype(17, "i64", "I64", 8, "<i8", "int64"),
    Dtype(18, "u64", "U64", 8, "<u8", "uint64"),
    Dtype(20, "f8_e4m3", "F8_E4M3", 1, None, "float8_e4m3fn"),
    Dtype(21, "f8_e5m2", "F8_E5M2", 1, None, "float8_e5m2"),
    Dtype(22, "f8_e8m0", "F8_E8M0", 1, None, "float8_e8m0fnu"),
    Dtype(23, "c64", "C64", 8, "<c8", "complex64"),
]
BY_NAME = {d.name: d for d in DTYPES}
BY_ST_NAME = {d.st_name: d for d in DTYPES}
BY_CODE = {d.code: d for d in DTYPES}
FLOAT_NAMES = ("f32", "f64", "f16", "bf16")


def numpy_to_dtype(np_dtype):
    """The pg_soup dtype of a numpy dtype, or None."""
    np_dtype = np.dtype(np_dtype)
    for d in DTYPES:
        if d.numpy is not None and d.numpy == np_dtype.newbyteorder("<"):
            return d
    return None


def copy_header():
    """COPY BINARY's file header: signature, flags, extension length."""
    return COPY_SIGNATURE + struct.pack(">ii", 0, 0)


COPY_TRAILER = struct.pack(">h", -1)
_ROW_START = struct.Struct(">hiq")           # 4 fields; model_id int8
_INT4_FIELD = struct.Struct(">ii")


def chunk_row_head(model_id, name_utf8, chunk, dtype_code, length, nbytes):
    """A COPY BINARY row of soup.chunks (model_id, tensor, chunk, data) up to
    the chunk's element bytes."""
    return b"".join((
        _ROW_START.pack(4, 8, model_id),
        struct.pack(">i", len(name_utf8)), name_utf8,
        _INT4_FIELD.pack(4, chunk),
        struct.pack(">i", CHUNK_HEADER.size + nbytes),
        CHUNK_HEADER.pack(WIRE_VERSION, dtype_code, 1, length),
    ))
