#!/usr/bin/env python3
"""Regenerate the seed corpora under test/fuzz/corpus/.

    python3 test/fuzz/gen_corpus.py [FIXTURES]

FIXTURES defaults to ../shared/fixtures/safetensors (as in the Makefile's
SOUP_FIXTURES).  The seeds are committed, so this is only needed to change
them.  Real seeds are the 8-byte length plus the header of the fixture files
(no tensor data), whole files for the tiny sharded fixtures, and the index;
hand-made seeds cover edge cases of the format and of the text form.
"""
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ST_DIR = os.path.join(HERE, "corpus", "safetensors")
TT_DIR = os.path.join(HERE, "corpus", "tensor_text")


def write(d, name, data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def framed(header, data=b"", pad=True):
    """A file: 8-byte LE length, header (str or bytes), data."""
    if isinstance(header, str):
        header = header.encode("utf-8")
    if pad:
        header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header + data


def real_seeds(fixtures):
    def hdr(rel):
        with open(os.path.join(fixtures, rel), "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            f.seek(0)
            return f.read(8 + n)

    def whole(rel):
        with open(os.path.join(fixtures, rel), "rb") as f:
            return f.read()

    write(ST_DIR, "real_mnist.hdr", hdr("dalotia-mnist/model-mnist.safetensors"))
    write(ST_DIR, "real_mnist.json", hdr("dalotia-mnist/model-mnist.safetensors")[8:])
    write(ST_DIR, "real_fluxml.hdr", hdr("fluxml-safetensors-jl/non_sharded/model.safetensors"))
    write(ST_DIR, "real_fluxml_metadata.hdr",
          hdr("fluxml-safetensors-jl/non_sharded/model.with_metadata.safetensors"))
    write(ST_DIR, "real_fluxml_numpy.hdr",
          hdr("fluxml-safetensors-jl/non_sharded/model.numpy.safetensors"))
    write(ST_DIR, "real_peft.hdr",
          hdr("peft-finegates-mrpc/checkpoint-230/adapter_model.safetensors"))
    for i in range(1, 7):
        rel = "fluxml-safetensors-jl/sharded/model-%05d-of-00006.safetensors" % i
        write(ST_DIR, "real_shard%d.safetensors" % i, whole(rel))
    write(ST_DIR, "real_shard5.json",
          hdr("fluxml-safetensors-jl/sharded/model-00005-of-00006.safetensors")[8:])
    write(ST_DIR, "real_index.json",
          whole("fluxml-safetensors-jl/sharded/model.safetensors.index.json"))


SIZES = {"F32": 4, "F64": 8, "F16": 2, "BF16": 2, "BOOL": 1, "U8": 1, "I8": 1,
         "I16": 2, "U16": 2, "I32": 4, "U32": 4, "I64": 8, "U64": 8,
         "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "C64": 8}


def header_of(tensors, metadata=None):
    """tensors: list of (name, dtype, shape); offsets laid out in order."""
    obj = {}
    if metadata is not None:
        obj["__metadata__"] = metadata
    off = 0
    for name, dt, shape in tensors:
        n = 1
        for d in shape:
            n *= d
        size = n * SIZES[dt]
        obj[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + size]}
        off += size
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False), off


def handmade_safetensors():
    s = {}
    s["empty.json"] = "{}"
    s["empty_padded.json"] = "{}      "
    s["empty_file.st"] = framed("{}")
    s["meta_empty.json"] = '{"__metadata__":{}}'
    s["meta.json"] = '{"__metadata__":{"format":"pt","a":"","\\u00e9\\n":"\\"\\\\/"}}'
    h, n = header_of([("a", "F32", [0]), ("b", "U8", [2]), ("c", "BF16", [0, 3])])
    s["zero_size.st"] = framed(h, b"\x01\x02")
    h, n = header_of([("s", "F64", [])])
    s["scalar.st"] = framed(h, b"\0" * 8)
    s["scalar.json"] = h
    h, n = header_of([("t_" + dt.lower(), dt, [2]) for dt in SIZES], {"k": "v"})
    s["all_dtypes.st"] = framed(h, bytes(n))
    s["all_dtypes.json"] = h
    s["escapes.json"] = ('{"\\u00e9\\n\\"\\\\\\/\\ud83d\\ude00\\u001f\\t\x7f\u00ff":'
                         '{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}')
    s["dims32.json"] = header_of([("d", "U8", [1] * 32)])[0]
    s["dims33.json"] = '{"d":{"dtype":"U8","shape":[%s],"data_offsets":[0,1]}}' % ",".join(["1"] * 33)
    s["max_int.json"] = '{"m":{"dtype":"U8","shape":[9007199254740992],"data_offsets":[0,9007199254740992]}}'
    s["over_max_int.json"] = '{"m":{"dtype":"U8","shape":[9007199254740993],"data_offsets":[0,9007199254740993]}}'
    s["numel_overflow.json"] = ('{"m":{"dtype":"F32","shape":[4294967296,4294967296,4],'
                                '"data_offsets":[0,0]}}')
    s["dup_key.json"] = '{"a":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    s["dup_tensor.json"] = ('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
                            '"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}')
    s["dup_meta.json"] = '{"__metadata__":{"x":"1","x":"2"}}'
    s["dup_metadata.json"] = '{"__metadata__":{},"__metadata__":{}}'
    s["unknown_keys.json"] = ('{"a":{"dtype":"F32","x":{"y":[1,{"z":2}]},"shape":[1],'
                              '"z":null,"data_offsets":[0,4],"w":true}}')
    s["dup_unknown.json"] = '{"a":{"dtype":"F32","x":1,"shape":[1],"x":2,"data_offsets":[0,4]}}'
    s["gap.json"] = ('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
                     '"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}')
    s["overlap.json"] = ('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
                         '"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}')
    s["order.json"] = ('{"late":{"dtype":"F16","shape":[2],"data_offsets":[4,8]},'
                       '"early":{"dtype":"I32","shape":[1],"data_offsets":[0,4]},'
                       '"zero":{"dtype":"I8","shape":[0],"data_offsets":[8,8]}}')
    s["bad_dtype.json"] = '{"a":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}}'
    s["negative.json"] = '{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}'
    s["fraction.json"] = '{"a":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4e0]}}'
    s["offsets3.json"] = '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}'
    s["missing.json"] = '{"a":{"dtype":"F32","shape":[1]}}'
    s["not_object.json"] = '[{"a":1}]'
    s["deep.json"] = "[" * 9 + "]" * 9
    s["deep_in_string.json"] = '{"__metadata__":{"[[[[[[[[[[":"{{{{{{{{{{"}}'
    s["nul_escape.json"] = '{"a\\u0000":{}}'
    s["lone_surrogate.json"] = '{"\\ud800":{}}'
    s["trailing_junk.json"] = '{} x'
    s["truncated.json"] = '{"a":{"dtype":"F32","sha'
    s["too_large.st"] = struct.pack("<Q", 100000001) + b"{}"
    s["past_end.st"] = struct.pack("<Q", 64) + b"{}"
    h, n = header_of([("a", "F32", [2])])
    s["trailing_data.st"] = framed(h, bytes(12))
    s["short_data.st"] = framed(h, bytes(4))
    s["unpadded.st"] = framed(h, bytes(8), pad=False)
    # indexes
    s["index_empty.json"] = '{"weight_map":{}}'
    s["index.json"] = ('{"metadata":{"total_size":12,"x":[1,{"y":null}]},"weight_map":'
                       '{"a":"m-1.safetensors","b":"m-2.safetensors","c":"m-1.safetensors"}}')
    s["index_bad_shard.json"] = '{"weight_map":{"a":"../x.safetensors","b":"d/x"}}'
    s["index_dup.json"] = '{"weight_map":{"a":"x","a":"y"}}'
    s["index_no_map.json"] = '{"metadata":"str"}'
    s["index_meta_scalar.json"] = '{"metadata":  12 ,"weight_map":{"\\u00e9":"\\u00e9"}}'
    return s


def tensor_text_seeds():
    t = {}
    t["f32.txt"] = "f32:[1,2]"
    t["bf16.txt"] = "bf16:[[1,2],[3,4]]"
    t["f8_hex.txt"] = "f8_e4m3(3):\\xaea9b8"
    t["zero_dim.txt"] = "f32(2,0,3):[]"
    t["default.txt"] = "[1.5, -2, 3e-3]"
    t["scalar.txt"] = "1.5"
    t["nan.txt"] = "f64:[NaN, -Infinity, Infinity, -0.0]"
    t["f64.txt"] = "f64:[4.9e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 0.1]"
    t["f16.txt"] = "f16:[65504, 6e-8, -0, 0.1, 1e-5]"
    t["f32_sub.txt"] = "f32:[1e-45, 3.4028235e38, 1.17549435e-38]"
    t["i8.txt"] = "i8:[-128,127,0]"
    t["u8.txt"] = "u8:[0,255]"
    t["i16.txt"] = "i16(2,2):[[-32768,32767],[1,-1]]"
    t["u16.txt"] = "u16:[65535]"
    t["i32.txt"] = "i32(2,3):[1,2,3,4,5,6]"
    t["u32.txt"] = "U32:[4294967295, +7]"
    t["i64.txt"] = "i64:[-9223372036854775808, 9223372036854775807]"
    t["u64.txt"] = "u64:[18446744073709551615]"
    t["bool.txt"] = "bool:[true,FALSE,1,0]"
    t["c64.txt"] = "c64(2):\\x0000803f000000400000404000008040"
    t["c64_scalar.txt"] = "c64():\\x0000803f00000040"
    t["f8_e5m2.txt"] = "f8_e5m2:\\xbab2ba"
    t["f8_e8m0.txt"] = "f8_e8m0(2):\\x7f80"
    t["f32_hex.txt"] = "f32(2):\\x0000c07f0100807f"
    t["hex_scalar.txt"] = "f16():\\x003c"
    t["empty_nested.txt"] = "f32:[[],[]]"
    t["empty.txt"] = "i32:[]"
    t["deep.txt"] = "f32:[[[[[[1]]]]]]"
    t["dims32.txt"] = "u8(%s):[7]" % ",".join(["1"] * 32)
    t["dims33.txt"] = "u8(%s):[7]" % ",".join(["1"] * 33)
    t["spaces.txt"] = "  f32 ( 2 , 2 ) : [ [ 1 , 2 ] , [ 3 , 4 ] ]  "
    t["spaces_ok.txt"] = "  f32(2, 2):[ [ 1 , 2 ] , [3,4] ]  "
    t["hexfloat.txt"] = "f64:[0x1p-1074, 0x1.fffffffffffffp1023]"
    t["nan_payload.txt"] = "f64:[nan(0x123), -nan]"
    t["ragged.txt"] = "f32:[[1,2],[3]]"
    t["bad_dtype.txt"] = "f31:[1]"
    # binary (recv) form: version 1, dtype code, ndim, big-endian dims, data
    t["recv_f32.raw"] = bytes([1, 1, 1]) + struct.pack(">i", 2) + struct.pack("<ff", 1.0, -2.5)
    t["recv_bf16_2x2.raw"] = bytes([1, 4, 2]) + struct.pack(">ii", 2, 2) + bytes.fromhex("803f0040404080c0")
    t["recv_f16_scalar.raw"] = bytes([1, 3, 0]) + bytes.fromhex("017c")
    t["recv_bool.raw"] = bytes([1, 10, 1]) + struct.pack(">i", 3) + bytes([0, 1, 0])
    t["recv_c64.raw"] = bytes([1, 23, 1]) + struct.pack(">i", 1) + bytes(8)
    t["recv_zero.raw"] = bytes([1, 2, 3]) + struct.pack(">iii", 2, 0, 3)
    # regressions of bugs the fuzzer found (see README.md)
    t["bug_bool_byte2.raw"] = bytes([1, 10, 1]) + struct.pack(">i", 3) + bytes([2, 1, 0])
    t["bug_empty_big.txt"] = "f32(536870912,0):[]"
    t["bug_empty_big.raw"] = bytes([1, 2, 3]) + struct.pack(">iii", 4259842, 15, 0)
    return t


def main():
    fixtures = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        HERE, "..", "..", "..", "shared", "fixtures", "safetensors")
    os.makedirs(ST_DIR, exist_ok=True)
    os.makedirs(TT_DIR, exist_ok=True)
    real_seeds(fixtures)
    for name, data in handmade_safetensors().items():
        write(ST_DIR, name, data)
    for name, data in tensor_text_seeds().items():
        write(TT_DIR, name, data)


if __name__ == "__main__":
    main()
