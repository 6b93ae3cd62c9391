#!/usr/bin/env bash
# Builds the local control-plane binaries from Go modules into a cache outside the repo.
# Each tool lands in $TRYON_TOOLS_CACHE/<tool>-<version>/, so a pinned version is built once
# and a warm start costs nothing.
# Usage: hack/build-tools.sh [kubernetes|etcd|kwok|helm|node|containerd|coredns|registry|prometheus|keda ...]
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
cache="${TRYON_TOOLS_CACHE:-$HOME/.cache/tryon-operator/bin}"
k8s_version="v1.36.3"
etcd_version="v3.6.16"
kwok_version="v0.8.0"
helm_version="v3.22.0"
coredns_version="v1.15.0"
containerd_version="v2.4.2"
registry_version="v3.1.2"
prometheus_version="v0.316.0"  # the Go module version of Prometheus 3.x
keda_version="v2.20.2"

export GOFLAGS="-mod=mod -trimpath -buildvcs=false"
export CGO_ENABLED=0

# Full build output goes to one log per tool; the terminal gets one line per step.
logs="${TRYON_BUILD_LOG_DIR:-$cache/logs}"
mkdir -p "$logs"

# with_retries NAME LOG CMD...: runs CMD (output appended to LOG); a failure that looks like a
# transient registry or network error is retried with backoff, anything else fails at once.
with_retries() {
  local name="$1" log="$2"; shift 2
  local attempt delay=5
  for attempt in 1 2 3 4; do
    if "$@" >>"$log" 2>&1; then return 0; fi
    if ((attempt < 4)) && tail -n 40 "$log" | grep -qiE \
      'dial tcp|i/o timeout|TLS handshake timeout|connection (reset|refused)|unexpected EOF|50[234] |Bad Gateway|Service Unavailable|temporary failure'; then
      echo "  $name: transient download error, retry $attempt in ${delay}s (log: $log)" >&2
      sleep "$delay"; delay=$((delay * 3))
      continue
    fi
    echo "build of $name failed; last lines of $log:" >&2
    tail -n 25 "$log" >&2
    return 1
  done
}

# go_build DIR OUTDIR LDFLAGS PACKAGE... builds into OUTDIR atomically (a half build never counts).
go_build() {
  local dir="$1" out="$2" ldflags="$3"; shift 3
  if [[ -f "$out/.complete" ]]; then return 0; fi
  local name log started=$SECONDS
  name="$(basename "$out")"; log="$logs/$name.log"
  echo "building $name (first time only; cached in $out; log: $log)" >&2
  : >"$log"
  local tmp="$out.partial"
  rm -rf "$tmp" && mkdir -p "$tmp"
  (cd "$here/tools/$dir" && with_retries "$name" "$log" go build -ldflags "-s -w $ldflags" -o "$tmp/" "$@")
  touch "$tmp/.complete"
  rm -rf "$out" && mv "$tmp" "$out"
  echo "  built $name in $((SECONDS - started))s" >&2
}

build_kubernetes() {
  local minor="${k8s_version#v1.}"; minor="${minor%%.*}"
  local v="k8s.io/component-base/version"
  local ld="-X $v.gitVersion=$k8s_version -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean"
  ld="$ld -X k8s.io/client-go/pkg/version.gitVersion=$k8s_version"
  go_build kubernetes "$cache/kubernetes-$k8s_version" "$ld" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
}
# The main package over etcdmain builds as "etcd", the last element of its module path.
build_etcd() { go_build etcd "$cache/etcd-$etcd_version" "" .; }
build_kwok() { go_build kwok "$cache/kwok-$kwok_version" "-X sigs.k8s.io/kwok/pkg/consts.Version=$kwok_version" sigs.k8s.io/kwok/cmd/kwok; }
# The real node's programs: kubelet, kube-proxy and the fake-GPU device plugin from the same
# Kubernetes module (so a warm control-plane build makes this quick), and the pause binary from
# that module's C source (static, so the pause image needs nothing else).
build_node() {
  local minor="${k8s_version#v1.}"; minor="${minor%%.*}"
  local v="k8s.io/component-base/version"
  local ld="-X $v.gitVersion=$k8s_version -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean"
  local out="$cache/kubernetes-node-$k8s_version"
  go_build kubernetes "$out" "$ld" k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy ./gpustub
  if [[ ! -x "$out/pause" ]]; then
    local src
    src="$(cd "$here/tools/kubernetes" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c"
    gcc -Os -static -o "$out/pause.partial" "$src" -DVERSION=3.10-tryon
    mv "$out/pause.partial" "$out/pause"
  fi
}
# go_install OUTDIR TAGS LDFLAGS PACKAGE@VERSION...: `go install` of a module without replace
# lines into OUTDIR, atomically like go_build.
go_install() {
  local out="$1" tags="$2" ldflags="$3"; shift 3
  if [[ -f "$out/.complete" ]]; then return 0; fi
  local name log started=$SECONDS
  name="$(basename "$out")"; log="$logs/$name.log"
  echo "building $name (first time only; cached in $out; log: $log)" >&2
  : >"$log"
  rm -rf "$out.partial" && mkdir -p "$out.partial"
  GOBIN="$out.partial" GOFLAGS="-trimpath -buildvcs=false" with_retries "$name" "$log" \
    go install -tags "$tags" -ldflags "-s -w $ldflags" "$@"
  touch "$out.partial/.complete"
  rm -rf "$out" && mv "$out.partial" "$out"
  echo "  built $name in $((SECONDS - started))s" >&2
}
# containerd v2 with its runc shim and ctr; no cgo, no btrfs/zfs/devmapper snapshotters.
build_containerd() {
  local m="github.com/containerd/containerd/v2" v="$containerd_version"
  go_install "$cache/containerd-$v" "no_btrfs no_zfs no_devmapper" "-X $m/version.Version=$v" \
    "$m/cmd/containerd@$v" "$m/cmd/containerd-shim-runc-v2@$v" "$m/cmd/ctr@$v"
}
build_helm() { go_build helm "$cache/helm-$helm_version" "-X helm.sh/helm/v3/internal/version.version=$helm_version" helm.sh/helm/v3/cmd/helm; }
# CoreDNS with a minimal, compile-time plugin set (hack/tools/coredns/main.go); no forward plugin.
build_coredns() { go_build coredns "$cache/coredns-$coredns_version" "" .; }
# Prometheus with Kubernetes service discovery only (the e2e scrapes the renderer pods with it) and
# promtool, which checks and unit-tests the chart's alerting rules (make lint, make test).
build_prometheus() {
  local m="github.com/prometheus/prometheus" v="$prometheus_version"
  go_install "$cache/prometheus-$v" "remove_all_sd enable_kubernetes_sd" "" \
    "$m/cmd/prometheus@$v" "$m/cmd/promtool@$v"
}
# The CNCF Distribution registry the real node pulls from, and a bcrypt htpasswd line maker for
# its auth file (hack/tools/registry/htpasswd; the registry's module has no such command).
build_registry() {
  go_build registry "$cache/registry-$registry_version" "" \
    github.com/distribution/distribution/v3/cmd/registry ./htpasswd
}

# KEDA's operator and its external-metrics API server (adapter), built only when asked (not in the
# default list: ~8 min cold). Its go.mod has replace lines, so `go install` refuses it: the downloaded
# module dir is copied (the module cache is read-only) and built there. The CRDs and APIService
# manifests are copied next to the binaries (config/) for hack/localcluster/keda.py.
build_keda() {
  local m="github.com/kedacore/keda/v2" v="$keda_version" out="$cache/keda-$keda_version"
  if [[ -f "$out/.complete" ]]; then return 0; fi
  local name log started=$SECONDS src
  name="$(basename "$out")"; log="$logs/$name.log"
  echo "building $name (first time only; cached in $out; log: $log)" >&2
  : >"$log"
  with_retries "$name" "$log" go mod download "$m@$v"
  src="$(go mod download -json "$m@$v" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  if [[ ! -d "$src" ]]; then echo "go mod download gave no dir for $m@$v" >&2; return 1; fi
  local tmp="$out.partial"
  rm -rf "$tmp" && mkdir -p "$tmp"
  cp -r "$src" "$tmp/src"
  chmod -R u+w "$tmp/src"
  local ld="-s -w -X $m/version.Version=${v#v} -X $m/version.GitCommit=$v"
  (cd "$tmp/src" && with_retries "$name" "$log" go build -ldflags "$ld" -o "$tmp/keda" ./cmd/operator \
    && with_retries "$name" "$log" go build -ldflags "$ld" -o "$tmp/keda-adapter" ./cmd/adapter)
  cp -r "$tmp/src/config" "$tmp/config"
  rm -rf "$tmp/src"
  touch "$tmp/.complete"
  rm -rf "$out" && mv "$tmp" "$out"
  echo "  built $name in $((SECONDS - started))s" >&2
}

# One build at a time per cache: parallel test runs would otherwise clobber each other's output.
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9

tools=("$@")
if [[ ${#tools[@]} -eq 0 ]]; then tools=(etcd kwok kubernetes helm node containerd coredns registry prometheus); fi
for t in "${tools[@]}"; do "build_$t"; done

# Print the directories so callers can put them on PATH.
printf '%s\n' "$cache/kubernetes-$k8s_version" "$cache/etcd-$etcd_version" \
  "$cache/kwok-$kwok_version" "$cache/helm-$helm_version" \
  "$cache/kubernetes-node-$k8s_version" "$cache/containerd-$containerd_version" \
  "$cache/coredns-$coredns_version" "$cache/registry-$registry_version" \
  "$cache/prometheus-$prometheus_version" "$cache/keda-$keda_version"
