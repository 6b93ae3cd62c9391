#!/usr/bin/env bash
# Builds the Argo Rollouts controller (the peer in bench/operator_bench.py) from its Go module,
# pinned in hack/tools/argo-rollouts/go.mod, into a cache outside the repo:
#   $TRYON_TOOLS_CACHE/argo-rollouts-<version>/rollouts-controller   (built once, then reused)
# and prints two lines: that directory, and the module's source directory in the Go module cache
# (its manifests/crds/*.yaml are the CRDs the benchmark applies; nothing is copied into the repo).
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
mod_dir="$here/hack/tools/argo-rollouts"
cache="${TRYON_TOOLS_CACHE:-$HOME/.cache/tryon-operator/bin}"
module="github.com/argoproj/argo-rollouts"
version="$(awk -v m="$module" '$1 == "require" && $2 == m {print $3}' "$mod_dir/go.mod")"
if [[ -z "$version" ]]; then
  echo "build-argo-rollouts: no 'require $module <version>' line in $mod_dir/go.mod" >&2
  exit 1
fi
out="$cache/argo-rollouts-$version"

export GOFLAGS="-mod=mod -trimpath -buildvcs=false"
export CGO_ENABLED=0

mkdir -p "$cache"
exec 9>"$cache/.lock-argo-rollouts"
flock 9

if [[ ! -f "$out/.complete" ]]; then
  echo "building rollouts-controller $version (first time only; cached in $out)" >&2
  tmp="$out.partial"
  rm -rf "$tmp" && mkdir -p "$tmp"
  (cd "$mod_dir" && go build -ldflags "-s -w" -o "$tmp/" "$module/cmd/rollouts-controller")
  touch "$tmp/.complete"
  rm -rf "$out" && mv "$tmp" "$out"
fi

src="$(cd "$mod_dir" && go mod download -json "$module@$version" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
printf '%s\n' "$out" "$src"
