#!/usr/bin/env bash
# Writes the HTML report of one sweep seed and opens it in headless Chromium: the page must
# render its client history (the script marks <body data-rendered="N"> with the row count)
# and log no script errors.
set -euo pipefail
sim=$1
dir=$2
rm -rf "$dir" && mkdir -p "$dir"
"$sim" --seed 7 --seconds 5 --ops 50 --report "$dir/report.html" >"$dir/sim.txt"
browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
  echo "chromium is not installed (scripts/deps.sh installs it)" >&2
  exit 1
fi
timeout 120 "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$dir/profile" --enable-logging=stderr --v=0 \
  --dump-dom "file://$dir/report.html" >"$dir/dom.html" 2>"$dir/console.txt" || true
if ! grep -Eq '<body data-rendered="[1-9][0-9]*"' "$dir/dom.html"; then
  echo "the report's script did not run to completion" >&2
  exit 1
fi
if grep -E 'Uncaught|SyntaxError|TypeError|ReferenceError' "$dir/console.txt"; then
  echo "the report logged script errors" >&2
  exit 1
fi
grep -q 'id="timeline"' "$dir/dom.html"
echo "report rendered: $(grep -Eo 'data-rendered="[0-9]+"' "$dir/dom.html")"
