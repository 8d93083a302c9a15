# test/check.sh - the checks of the shell test scripts.  Source it, then
# `check DESCRIPTION GOT WANT` for each check, and end the script with
# `check_summary NAME`, which prints the counts and fails if any check did.
passed=0
failed=0

check() {
	if [ "$2" = "$3" ]; then passed=$((passed + 1)); echo "ok: $1"
	else failed=$((failed + 1)); echo "FAILED: $1: got '$2', want '$3'"; fi
}

check_summary() {
	echo "$1: $passed passed, $failed failed"
	[ "$failed" = 0 ]
}
