#!/bin/bash
# scripts/deps.sh - install what pg_soup needs to build, test and run its
# demo on Debian 12.  Needs root (apt-get); does nothing when all is there.
set -euo pipefail

PACKAGES=(
	build-essential
	postgresql-15
	postgresql-server-dev-15
	libpq-dev
	postgresql-15-cron
	libopenblas-dev
	liblbfgs-dev
	libyaml-dev
	python3-numpy
	python3-psycopg2
	python3-torch
	python3-matplotlib
	python3-sklearn
	libipc-run-perl
	bsdutils
)

missing=()
for p in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
