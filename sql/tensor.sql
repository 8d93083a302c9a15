-- soup.tensor: text and binary I/O, casts, accessors, operators, errors
SET search_path = public, soup;
SET extra_float_digits = 0;

-- text round trips: every dtype, nesting, scalars, empty shapes
SELECT t::text AS out, soup.dtype(t), soup.numel(t), soup.shape(t)
FROM (VALUES
	('[1, 2.5, -3]'::soup.tensor),
	('f64:[[1,2,3],[4,5,6]]'),
	('f16:[0.1, 65504, -0]'),
	('bf16:[[1,2],[3,4.5]]'),
	('f32:7'),
	('f32:[]'),
	('f16:[[],[]]'),
	('f32(2,0,3):[]'),
	('f32(2,2):[1,2,3,4]'),
	('i8:[-128,127]'),
	('u8:[0,255]'),
	('i16:[-32768,32767]'),
	('u16:[65535]'),
	('i32:[-2147483648,2147483647]'),
	('u32:[4294967295]'),
	('i64:[-9223372036854775808,9223372036854775807]'),
	('u64:[18446744073709551615]'),
	('bool:[true,false,1,0]'),
	('f8_e4m3(3):\xaea9b8'),
	('f8_e5m2(1,3):\xbab2ba'),
	('c64(1):\x0000803f00000040'),
	('F32:[NaN, Infinity, -Infinity]'),
	('f32(536870912,0):[]'),
	('bool:[0,1,2]')
) v(t);

-- output reads back to the same value (bitwise identity)
SELECT bool_and(t::text::soup.tensor OPERATOR(soup.=) t) AS text_roundtrip
FROM (VALUES ('f32:[0.1,0.2,0.3,1e-40,3.4028235e38]'::soup.tensor),
			 ('f64:[0.1,1e-310,1.7976931348623157e308]'),
			 ('f16:[0.1,6e-08,65504]'),
			 ('bf16:[0.1,1e-39,3.3895314e38]')) v(t);

-- f16/bf16 round to nearest even on input: 2049 is a tie between 2048 and 2050
SELECT 'f16:[2049, 2051, 65519, 65520]'::soup.tensor AS f16_rne,
	   'bf16:[257, 259]'::soup.tensor AS bf16_rne;

-- binary send/recv (COPY BINARY) round trip for every dtype
CREATE TEMP TABLE bin (id int, t soup.tensor);
INSERT INTO bin VALUES (1, 'f32:[1,2]'), (2, 'f64:[[1],[2]]'), (3, 'bf16:[3]'),
	(4, 'f16:[]'), (5, 'i64:[5]'), (6, 'f8_e4m3(2):\x0102'), (7, 'bool:1'),
	(8, 'f32(2,0,3):[]');
COPY bin TO '/tmp/pg_soup_regress/out/bin.copy' WITH (FORMAT binary);
CREATE TEMP TABLE bin2 (LIKE bin);
COPY bin2 FROM '/tmp/pg_soup_regress/out/bin.copy' WITH (FORMAT binary);
SELECT a.id, a.t, a.t OPERATOR(soup.=) b.t AS same FROM bin a JOIN bin2 b USING (id) ORDER BY id;

-- bytes: packed little-endian data, and back
SELECT soup.bytes('f32:[1,2]'), soup.bytes('bf16:[1,-2]'), soup.bytes('i16:[1,-2]');
SELECT soup.tensor_from_bytes('\x0000803f00000040', 'f32'),
	   soup.tensor_from_bytes('\x000102030405', 'u8', ARRAY[2,3]),
	   soup.tensor_from_bytes(NULL, 'f32');

-- casts from and to float arrays keep the shape
SELECT ARRAY[[1,2],[3,4]]::float4[]::soup.tensor AS from_float4,
	   ARRAY[0.1,0.2]::float8[]::soup.tensor AS from_float8,
	   '{}'::float4[]::soup.tensor AS empty,
	   'f16:[[1.5,2],[3,4]]'::soup.tensor::float8[] AS to_float8,
	   'bf16:0.5'::soup.tensor::float4[] AS scalar_to_array,
	   soup.tensor(ARRAY[1.0009765625, 3]::float8[], 'bf16') AS built;

-- conversions between float dtypes round once
SELECT soup.astype('f64:[1.00390625, 0.1]', 'bf16'), soup.astype('bf16:[1.5]', 'f32'),
	   soup.astype('f32:[1]', 'f32');

-- arithmetic in float64, rounded into the dtype; norm and dot
SELECT 'f32:[1,2]'::soup.tensor + 'f32:[3,4]' AS add,
	   'f64:[1,2]'::soup.tensor - 'f64:[0.5,4]' AS sub,
	   2 * 'bf16:[1.5,-3]'::soup.tensor AS mul,
	   'f16:[1,2]'::soup.tensor * 0.5 AS mul_right,
	   3 * 'f32:[Infinity]'::soup.tensor AS inf_scaled,
	   soup.norm('f32:[3,4]'), soup.dot('f64:[1,2,3]', 'f64:[4,5,6]');

SELECT 'f32:[1,2]'::soup.tensor = 'f32:[1,2]' AS same,
	   'f32:[1,2]'::soup.tensor = 'f64:[1,2]' AS other_dtype,
	   'f32:[1,2]'::soup.tensor <> 'f32:[[1,2]]' AS other_shape;

-- errors: each with its SQLSTATE
\set VERBOSITY sqlstate
SELECT 'f33:[1]'::soup.tensor;
SELECT '[1,2'::soup.tensor;
SELECT '[[1,2],[3]]'::soup.tensor;
SELECT '[[1,2],3]'::soup.tensor;
SELECT '[1,[2]]'::soup.tensor;
SELECT '[1,,2]'::soup.tensor;
SELECT '[1,x]'::soup.tensor;
SELECT '[1] junk'::soup.tensor;
SELECT ''::soup.tensor;
SELECT 'f32:[1e39]'::soup.tensor;
SELECT 'f64:[1e309]'::soup.tensor;
SELECT 'i8:[128]'::soup.tensor;
SELECT 'u8:[-1]'::soup.tensor;
SELECT 'u64:[18446744073709551616]'::soup.tensor;
SELECT 'bool:[256]'::soup.tensor;
SELECT 'i32:[1.5]'::soup.tensor;
SELECT 'f8_e4m3:[1]'::soup.tensor;
SELECT 'f32(2,2):[1,2,3]'::soup.tensor;
SELECT 'f32(2,-1):[]'::soup.tensor;
SELECT 'f32(3):\x0000'::soup.tensor;
SELECT 'f32:\x0g'::soup.tensor;
SELECT 'f32(1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1):[1]'::soup.tensor;
SELECT 'f32(100000,100000):[]'::soup.tensor;
SELECT soup.tensor_from_bytes('\x000102', 'f32');
SELECT soup.tensor_from_bytes('\x00', 'f99');
SELECT soup.tensor_from_bytes('\x00', 'u8', ARRAY[-1]);
SELECT ARRAY[1,NULL]::float4[]::soup.tensor;
SELECT 'i64:[1]'::soup.tensor::float8[];
SELECT 'f32(1,1,1,1,1,1,1):[1]'::soup.tensor::float4[];
SELECT 'f32:[1,2]'::soup.tensor + 'f32:[1,2,3]';
SELECT 'f32:[1,2]'::soup.tensor + 'f64:[1,2]';
SELECT 'i32:[1,2]'::soup.tensor + 'i32:[1,2]';
SELECT soup.astype('f32:[1]', 'i32');
SELECT soup.astype('f32:[1]', 'nope');
SELECT soup.tensor(ARRAY[1]::float8[], 'u8');
SELECT soup.norm('u8:[1]');
-- hostile binary input is refused by soup.tensor_recv (files from test/gen_test_data.py)
SELECT f AS bad_copy_file FROM pg_ls_dir('/tmp/pg_soup_regress/bad') f WHERE f LIKE 'recv_%' ORDER BY f;
COPY bin2 FROM '/tmp/pg_soup_regress/bad/recv_bad_version.copy' WITH (FORMAT binary);
COPY bin2 FROM '/tmp/pg_soup_regress/bad/recv_bad_dtype.copy' WITH (FORMAT binary);
COPY bin2 FROM '/tmp/pg_soup_regress/bad/recv_too_many_dims.copy' WITH (FORMAT binary);
COPY bin2 FROM '/tmp/pg_soup_regress/bad/recv_negative_dim.copy' WITH (FORMAT binary);
COPY bin2 FROM '/tmp/pg_soup_regress/bad/recv_short_data.copy' WITH (FORMAT binary);
COPY bin2 FROM '/tmp/pg_soup_regress/bad/recv_long_data.copy' WITH (FORMAT binary);
COPY bin2 FROM '/tmp/pg_soup_regress/bad/recv_truncated_header.copy' WITH (FORMAT binary);
COPY bin2 FROM '/tmp/pg_soup_regress/bad/recv_huge_shape.copy' WITH (FORMAT binary);
\set VERBOSITY default
