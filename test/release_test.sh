#!/bin/bash
# test/release_test.sh - the release files (META.json, LICENSE, CHANGELOG.md,
# versions, install and update scripts) agree, and `make dist` builds the
# PGXN archive from the committed tree.  Needs the built client.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=$(mktemp -d /tmp/pg_soup_release.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
make -s dist DIST_DIR="$WORK"
/usr/bin/python3 test/release_check.py "$PWD" "$WORK"/pg_soup-*.zip
