#!/usr/bin/env bash
# Installs the system programs `make bench` uses beyond those of install-test-deps.sh (which `make bench`
# also runs: bubblewrap, runsc, cc for the sandboxed servers): wrk (the load generator of the
# SDK and throughput benchmarks) and taskset (from util-linux; pins servers and load to cores).
# Idempotent. Needs root and apt-get (Debian); elsewhere it says what is missing and goes on.
set -u
missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-bench-deps: missing ${missing[*]} and cannot install them here (needs root and apt-get)" >&2
    exit 0
fi
echo "install-bench-deps: installing ${missing[*]} from Debian's packages..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null && apt-get install -y -qq "${missing[@]}" >/dev/null \
    || echo "install-bench-deps: apt-get could not install ${missing[*]}" >&2
