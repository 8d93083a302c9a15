#!/usr/bin/env bash
# test/fuzz/run.sh - build and run the pg_soup libFuzzer harnesses.
#
#   test/fuzz/run.sh [HARNESS...]          build, then fuzz each for a while
#   test/fuzz/run.sh --build [HARNESS...]  build only
#   test/fuzz/run.sh --repro HARNESS FILE...   build, run the given inputs once
#   test/fuzz/run.sh --coverage HARNESS DIR...  line coverage of src/ over the
#                                        inputs in DIR (llvm-cov report)
#
# HARNESS is safetensors or tensor_text (default: both, one after the other).
#
# Environment:
#   FUZZ_SECONDS     seconds per harness (default 60), libFuzzer -max_total_time
#   FUZZ_RSS_MB      -rss_limit_mb (default 2048)
#   FUZZ_ARGS        extra libFuzzer arguments (e.g. "-max_len=8192 -seed=1")
#   FUZZ_SKIP_KNOWN  known bugs the harnesses should not report again (see
#                    fuzz_tensor_text.c), e.g. "bool_bytes,empty_output"; passed through
#   FUZZ_VERBOSE     1: the harnesses print each input's outcome (for --repro)
#   FUZZ_BUILD_DIR   where binaries go (default: a temporary directory)
#   FUZZ_WORK_DIR    where the corpus copies and crash files go (default: a
#                    temporary directory, removed on success, kept on failure)
#   CC               clang with libFuzzer (default clang)
#   PG_CONFIG        pg_config of PostgreSQL 15 (default pg_config)
#
# The committed seed corpus (test/fuzz/corpus/NAME) is copied to the work
# directory first, so runs never write into the source tree.  Exits non-zero
# if any build fails or any harness reports a crash, leak, timeout or OOM;
# libFuzzer's crash-*/leak-*/timeout-*/oom-* reproducers are left in the work
# directory and listed.
set -u -o pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
CC=${CC:-clang}
PG_CONFIG=${PG_CONFIG:-pg_config}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_RSS_MB=${FUZZ_RSS_MB:-2048}
FUZZ_ARGS=${FUZZ_ARGS:-}

mode=fuzz
case "${1:-}" in
	--build) mode=build; shift ;;
	--repro) mode=repro; shift ;;
	--coverage) mode=coverage; shift ;;
	-h|--help) sed -n '2,31p' "$0"; exit 0 ;;
esac

if [ "$mode" = repro ] || [ "$mode" = coverage ]; then
	[ $# -ge 2 ] || { echo "usage: $0 --$mode HARNESS FILE|DIR..." >&2; exit 2; }
	harnesses=("$1"); shift
	repro_files=("$@")
else
	harnesses=("$@")
	[ ${#harnesses[@]} -gt 0 ] || harnesses=(safetensors tensor_text)
fi

for h in "${harnesses[@]}"; do
	case "$h" in
		safetensors|tensor_text) ;;
		*) echo "unknown harness \"$h\" (safetensors, tensor_text)" >&2; exit 2 ;;
	esac
done

command -v "$CC" >/dev/null || { echo "$CC not found (apt-get install clang libclang-rt-14-dev)" >&2; exit 2; }
pg_inc=$("$PG_CONFIG" --includedir-server) || exit 2
pg_lib=""
for d in "$("$PG_CONFIG" --pkglibdir)" "$("$PG_CONFIG" --libdir)/postgresql/15/lib" /usr/lib/postgresql/15/lib; do
	if [ -f "$d/libpgcommon.a" ]; then pg_lib=$d; break; fi
done
[ -n "$pg_lib" ] || { echo "libpgcommon.a not found (postgresql-server-dev-15)" >&2; exit 2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pg_soup_fuzz.XXXXXX")
build=${FUZZ_BUILD_DIR:-$tmp/build}
work=${FUZZ_WORK_DIR:-$tmp/work}
mkdir -p "$build" "$work"

# Same warnings as the Makefile (minus -Werror: clang 14 warns on the
# server headers' gnu_printf attribute, and the harness must build anyway).
if [ "$mode" = coverage ]; then
	# source-based coverage, no sanitizers
	SANFLAGS="-fsanitize=fuzzer -fprofile-instr-generate -fcoverage-mapping -O0"
else
	SANFLAGS="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -O1"
fi
CFLAGS="$SANFLAGS -g -fno-omit-frame-pointer -fopenmp-simd -ffp-contract=off \
 -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers \
 -Wno-sign-compare -Wno-ignored-attributes -Wno-pass-failed \
 -I$root/src -I$here -I$pg_inc"
LIBS="-L$pg_lib -lpgcommon -lpgport -lm"

build_one() {
	local h=$1
	local out=$build/fuzz_$h
	local cmd
	case "$h" in
		safetensors)
			# frontend build, as test/unit/test_safetensors (UNIT_CFLAGS)
			cmd="$CC $CFLAGS -DFRONTEND -o $out $here/fuzz_safetensors.c $here/fuzz_arena.c \
 $root/src/safetensors.c $root/src/kernels/dtype.c $LIBS" ;;
		tensor_text)
			# server headers, backend functions stubbed (pg_backend_stubs.c)
			cmd="$CC $CFLAGS -o $out $here/fuzz_tensor_text.c $here/pg_backend_stubs.c \
 $here/fuzz_arena.c $root/src/tensor_text.c $root/src/tensor.c \
 $root/src/kernels/dtype.c $LIBS" ;;
	esac
	echo "== build fuzz_$h"
	echo "$cmd" | tr -s ' '
	if ! $cmd; then
		echo "build of fuzz_$h failed" >&2
		return 1
	fi
}

status=0
for h in "${harnesses[@]}"; do
	build_one "$h" || status=1
done
if [ $status -ne 0 ]; then
	echo "work directory kept: $tmp" >&2
	exit $status
fi
[ "$mode" = build ] && { echo "binaries in $build"; [ -n "${FUZZ_BUILD_DIR:-}" ] && rm -rf "$tmp"; exit 0; }

if [ "$mode" = coverage ]; then
	h=${harnesses[0]}
	llvm_bin=$(dirname "$(readlink -f "$(command -v "$CC")")")
	LLVM_PROFILE_FILE="$work/cov.profraw" "$build/fuzz_$h" -runs=0 \
		-rss_limit_mb="$FUZZ_RSS_MB" "${repro_files[@]}" >"$work/cov.log" 2>&1
	status=$?
	"$llvm_bin/llvm-profdata" merge -sparse "$work/cov.profraw" -o "$work/cov.profdata" &&
		"$llvm_bin/llvm-cov" report "$build/fuzz_$h" -instr-profile="$work/cov.profdata" \
			$(case "$h" in
				safetensors) echo "$root/src/safetensors.c $root/src/kernels/dtype.c" ;;
				tensor_text) echo "$root/src/tensor_text.c $root/src/tensor.c $root/src/kernels/dtype.c" ;;
			esac) || status=1
	echo "(llvm-cov show $build/fuzz_$h -instr-profile=$work/cov.profdata FILE for line detail)"
	[ -n "${FUZZ_BUILD_DIR:-}" ] && [ -n "${FUZZ_WORK_DIR:-}" ] && rm -rf "$tmp"
	exit $status
fi

if [ "$mode" = repro ]; then
	h=${harnesses[0]}
	"$build/fuzz_$h" -rss_limit_mb="$FUZZ_RSS_MB" "${repro_files[@]}"
	status=$?
	rm -rf "$tmp"
	exit $status
fi

for h in "${harnesses[@]}"; do
	corpus=$work/corpus_$h
	artifacts=$work/artifacts_$h/
	mkdir -p "$corpus" "$artifacts"
	cp "$here/corpus/$h/"* "$corpus/"
	echo "== fuzz_$h for ${FUZZ_SECONDS}s (corpus copy: $corpus)"
	# shellcheck disable=SC2086
	"$build/fuzz_$h" -max_total_time="$FUZZ_SECONDS" -rss_limit_mb="$FUZZ_RSS_MB" \
		-timeout=30 -print_final_stats=1 -dict="$here/$h.dict" \
		-artifact_prefix="$artifacts" $FUZZ_ARGS "$corpus" \
		2>&1 | tee "$work/fuzz_$h.log" \
		| grep --line-buffered -E '^(#[0-9]+[[:space:]]+(INITED|DONE|pulse)|==[0-9]+==|SUMMARY|stat::|Done|fuzz_|unexpected|pg_backend_stubs|artifact_prefix|Test unit written)'
	rc=${PIPESTATUS[0]}
	if [ "$rc" -ne 0 ]; then
		echo "fuzz_$h FAILED (exit $rc); log: $work/fuzz_$h.log" >&2
		ls -l "$artifacts" >&2
		status=1
	else
		echo "fuzz_$h: no crash"
	fi
done

if [ $status -eq 0 ]; then
	echo "fuzzing passed"
	rm -rf "$tmp"
else
	echo "fuzzing found problems; work directory kept: $tmp" >&2
fi
exit $status
