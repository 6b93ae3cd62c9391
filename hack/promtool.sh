#!/usr/bin/env bash
# Runs promtool from the tool cache (hack/build-tools.sh promtool builds it once, ~3 min cold)
# with the arguments given: `make lint` checks the chart's alerting rules, `make test` runs their
# unit tests (tests/rules/).
set -euo pipefail
dir="$(bash "$(dirname "$0")/build-tools.sh" promtool | grep '/promtool-')"
exec "$dir/promtool" "$@"
