#!/usr/bin/env bash
# Refreshes docs/console.png (the README's picture of the console) from the playground screenshot
# the console's Chromium test takes while a streamed answer arrives. Run it by hand after changing
# how the console looks; it needs .venv and Chromium (scripts/install-test-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
base="$(mktemp -d /tmp/console-shot-XXXXXX)"
trap 'rm -rf "$base"' EXIT
.venv/bin/python -m pytest -q -p no:cacheprovider --basetemp="$base" \
    "tests/console/test_console_browser.py::test_the_playground_shows_streamed_frames_one_by_one"
cp "$(find "$base" -name playground.png | head -1)" docs/console.png
echo "docs/console.png updated"
