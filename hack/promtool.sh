#!/usr/bin/env bash
# Runs promtool from the tool cache (hack/build-tools.sh prometheus builds it once with Prometheus)
# with the arguments given: `make lint` checks the chart's alerting rules, `make test` runs their
# unit tests (tests/rules/).
set -euo pipefail
dir="$(bash "$(dirname "$0")/build-tools.sh" prometheus | grep '/prometheus-')"
exec "$dir/promtool" "$@"
