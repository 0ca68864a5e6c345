#!/usr/bin/env bash
# Set up the interop peers: Node's `ws` and playwright-core (npm ci, pinned by
# package-lock.json) and Debian's Chromium (apt-get). Idempotent: each step is
# skipped when it is already done. Never downloads a browser build of its own.
set -euo pipefail
cd "$(dirname "$0")"
start=$(date +%s.%N)

elapsed() {
    awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }'
}

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "setup.sh: node and npm are needed (Debian: apt-get install -y nodejs npm)" >&2
    exit 1
fi

# npm ci when node_modules is missing or does not match the lock file.
if node -e '
    const fs = require("fs");
    const want = JSON.parse(fs.readFileSync("package-lock.json", "utf8")).packages;
    const have = JSON.parse(fs.readFileSync("node_modules/.package-lock.json", "utf8")).packages;
    for (const [k, v] of Object.entries(want)) {
        if (k && (!have[k] || have[k].version !== v.version || have[k].integrity !== v.integrity)) process.exit(1);
    }
' 2>/dev/null; then
    echo "setup.sh: node_modules up to date"
else
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >/dev/null
    echo "setup.sh: npm ci done ($(elapsed) s)"
fi

CHROMIUM=${RAPIDWS_CHROMIUM:-/usr/bin/chromium}
if [ -x "$CHROMIUM" ]; then
    echo "setup.sh: $CHROMIUM present"
else
    SUDO=()
    if [ "$(id -u)" != 0 ]; then
        SUDO=(sudo -n)
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -qq
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends chromium >/dev/null
    echo "setup.sh: apt-get install chromium done ($(elapsed) s)"
fi

echo "setup.sh: ready in $(elapsed) s ($("$CHROMIUM" --version 2>/dev/null || echo 'chromium: ?'))"
