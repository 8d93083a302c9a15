#!/usr/bin/env python3
"""Write the reproducer of the "many elements" bug (64 MiB, too big to commit):

    python3 test/fuzz/crashes/tensor_text-many-elements.py /tmp/many_u8.bin
    FUZZ_RSS_MB=8192 test/fuzz/run.sh --repro tensor_text /tmp/many_u8.bin

The binary form of a u8 tensor of 67108865 zeros (64 MiB of data, far below
the 512 MiB limit): soup_tensor_recv accepts it and soup_tensor_out prints
it (134 MB of text), but soup_tensor_in refuses that text with
"invalid memory alloc request size 1073741824": the token array of
add_token() (src/tensor_text.c:71-78) reaches MaxAllocSize at 2^27 entries,
before its own "too many elements" limit (SOUP_MAX_DATA_BYTES / 2) can fire.
In SQL: SELECT soup.tensor_from_bytes(decode(repeat('00', 67108865), 'hex'),
'u8')::text::soup.tensor;
"""
import struct
import sys

N = 67108865
with open(sys.argv[1] if len(sys.argv) > 1 else "many_u8.bin", "wb") as f:
    f.write(bytes([1, 11, 1]) + struct.pack(">i", N) + bytes(N))
