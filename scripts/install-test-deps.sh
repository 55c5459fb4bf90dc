#!/usr/bin/env bash
# Installs the system programs the test suite uses, when missing: bubblewrap, setpriv (from
# util-linux; as root it drops each sandboxed worker to its own uid), and gVisor's runsc (the
# --sandbox gvisor workers; Debian's package runsc), and zsh and fish (the completion scripts
# `agentcore completion` prints are loaded in each shell), chromium (the web console's tests
# drive it headless over its DevTools protocol), and a C compiler (the server builds the tiny pid 1
# of forked sessions with it, `backends/reaper.py`).
# Idempotent. Needs root and apt-get (Debian); elsewhere it says what is missing and goes on,
# and the sandbox tests will then fail loudly rather than pass without testing anything.
set -u
missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
command -v setpriv >/dev/null 2>&1 || missing+=(util-linux)
command -v runsc >/dev/null 2>&1 || missing+=(runsc)
command -v zsh >/dev/null 2>&1 || missing+=(zsh)
command -v fish >/dev/null 2>&1 || missing+=(fish)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v cc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-test-deps: missing ${missing[*]} and cannot install them here (needs root and apt-get)" >&2
    exit 0
fi
echo "install-test-deps: installing ${missing[*]} from Debian's packages..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null && apt-get install -y -qq "${missing[@]}" >/dev/null \
    || echo "install-test-deps: apt-get could not install ${missing[*]}" >&2
