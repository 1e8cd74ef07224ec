#!/usr/bin/env bash
# Render results/report.html in headless Chromium and save a screenshot to look at:
#   scripts/check-report.sh [results/report.html] [docs/report.png]
# Needs Debian's chromium (apt-get install chromium). The report is a self-contained
# zip-free HTML page; Snakemake's report uses JavaScript, so a blank screenshot means it
# did not render.
set -euo pipefail
report=${1:-results/report.html}
shot=${2:-results/report.png}
[ -f "$report" ] || { echo "no $report: run 'make run' (or snakemake --report $report) first" >&2; exit 1; }
browser=$(command -v chromium || command -v chromium-browser || true)
[ -n "$browser" ] || { echo "chromium not found: apt-get install chromium" >&2; exit 1; }
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
timeout 120 "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --window-size=1400,1000 --virtual-time-budget=10000 \
  --screenshot="$(realpath -m "$shot")" "file://$(realpath "$report")" 2>/dev/null
echo "screenshot: $shot"
