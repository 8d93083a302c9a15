#!/bin/bash
# test/python_test.sh - the Python package (python/pg_soup) as installed by
# make install, against a throwaway cluster: /usr/bin/python3 must import it
# from anywhere, and its unittest suite (python/tests) runs as an ordinary
# role over TCP, with a superuser connection for the failure injection.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export SOUP_FIXTURES="${SOUP_FIXTURES:-$ROOT/../shared/fixtures/safetensors}"
export SOUP_DATA="${SOUP_DATA:-$ROOT/../shared/data}"
SOUP_FIXTURES="$(cd "$SOUP_FIXTURES" && pwd)"
SOUP_DATA="$(cd "$SOUP_DATA" && pwd)"
PY=/usr/bin/python3

source scripts/cluster.sh
trap cluster_stop EXIT
cluster_start

q "CREATE EXTENSION pg_soup"
q "CREATE ROLE trainer LOGIN"
q "GRANT USAGE ON SCHEMA soup TO trainer"
q "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA soup TO trainer"
# the server import in the tests reads the fixtures as the server's user
chmod -R a+rX "$SOUP_FIXTURES" 2>/dev/null || true

export PG_SOUP_TEST_DSN="host=127.0.0.1 port=$PGPORT dbname=postgres user=trainer"
export PG_SOUP_TEST_ADMIN_DSN="host=127.0.0.1 port=$PGPORT dbname=postgres user=postgres"
# from a directory outside the tree: the installed package is what is tested
# (and the build's pg_soup.so in the tree root is no Python module)
cd /tmp
echo "python: $($PY -c 'import pg_soup; print(pg_soup.__version__, pg_soup.__file__)')"
env -u PYTHONPATH "$PY" -m unittest discover -s "$ROOT/python/tests" -v
