#!/usr/bin/env python3
"""Write the reproducer of the "many elements" bug (too big to commit):

    python3 test/fuzz/crashes/tensor_text-many-elements.py /tmp/many_u8.raw [N]
    FUZZ_RSS_MB=16000 test/fuzz/run.sh --repro tensor_text /tmp/many_u8.raw

The binary form of a u8 tensor of N zeros.  soup_tensor_recv accepts it and
soup_tensor_out prints it (2N bytes of text), but soup_tensor_in must read
that text back.

N = 67108865 (2^26 + 1, 64 MiB, the default): before 48b828b the token array
of add_token() (src/tensor_text.c) reached MaxAllocSize at 2^27 entries:
"invalid memory alloc request size 1073741824".  Fixed by repalloc_huge.

N = 268435457 (2^28 + 1, 256 MiB, half the 512 MiB limit): still fails after
48b828b: add_token() refuses more than SOUP_MAX_DATA_BYTES / 2 tokens,
"too many elements" (about 4 GB of RSS and 90 s under ASan).
In SQL: SELECT soup.tensor_from_bytes(decode(repeat('00', 268435457), 'hex'),
'u8')::text::soup.tensor;
"""
import struct
import sys

path = sys.argv[1] if len(sys.argv) > 1 else "many_u8.raw"
n = int(sys.argv[2]) if len(sys.argv) > 2 else 67108865
with open(path, "wb") as f:
    f.write(bytes([1, 11, 1]) + struct.pack(">i", n) + bytes(n))
