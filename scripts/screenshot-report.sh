#!/usr/bin/env bash
# Renders an HTML report in headless Chromium and saves a screenshot, to check by eye that the
# report (tables, inline SVG charts) displays in a real browser.
#
#   scripts/screenshot-report.sh snapsim-out/report.html [out.png] [width,height]
#
# Needs Chromium (Debian: `apt-get install chromium`). The flags keep Chromium off the network.
set -euo pipefail
report=${1:?usage: $0 REPORT.html [OUT.png] [WIDTH,HEIGHT]}
out=${2:-${report%.html}.png}
size=${3:-1200,2400}
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [[ -z "$browser" ]]; then
    echo "error: no Chromium found (apt-get install chromium)" >&2
    exit 2
fi
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" --hide-scrollbars --window-size="$size" \
    --screenshot="$(realpath -m "$out")" "file://$(realpath "$report")" 2>/dev/null
test -s "$out" || { echo "error: Chromium wrote no screenshot" >&2; exit 1; }
echo "screenshot: $out"
