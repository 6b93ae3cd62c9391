#!/usr/bin/env bash
# Copies the canonical CRD (crds/tryonmodel.yaml) into the Helm chart, byte for byte.
#   hack/sync-chart-crd.sh          copy
#   hack/sync-chart-crd.sh --check  exit 1 (and say so) when the chart's copy differs
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
src="$root/crds/tryonmodel.yaml"
dst="$root/charts/tryon-operator/crds/tryonmodel.yaml"

if [[ ! -f "$src" ]]; then
  echo "missing $src (the canonical CRD)" >&2
  exit 2
fi

case "${1:-}" in
  --check)
    if ! cmp -s "$src" "$dst"; then
      echo "charts/tryon-operator/crds/tryonmodel.yaml differs from crds/tryonmodel.yaml;" \
        "run hack/sync-chart-crd.sh" >&2
      exit 1
    fi
    echo "chart CRD is in sync"
    ;;
  "")
    mkdir -p "$(dirname "$dst")"
    cp "$src" "$dst"
    echo "copied crds/tryonmodel.yaml -> charts/tryon-operator/crds/tryonmodel.yaml"
    ;;
  *)
    echo "usage: $0 [--check]" >&2
    exit 2
    ;;
esac
