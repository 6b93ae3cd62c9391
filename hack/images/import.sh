#!/usr/bin/env bash
# Loads the images that hack/images/build.sh exported into a containerd, for a kubelet that must
# never pull (no registry): every cached <name>.tar whose image changed since the last import goes
# into namespace k8s.io (the CRI's) and is unpacked for the snapshotter the kubelet uses.
#
#   hack/images/import.sh SOCKET CTR_BINARY [CONTAINERD_ROOT]
#
# SOCKET: containerd's gRPC socket. CTR_BINARY: the ctr to use (containerd 2.x or 1.6).
# CONTAINERD_ROOT (or TRYON_CONTAINERD_ROOT): containerd's root directory; what was imported is
# recorded next to it, in CONTAINERD_ROOT.tryon-images (one line per image: name, buildah id,
# containerd manifest digest). An image is skipped when its buildah id is the recorded one and
# containerd still has the image under its name with the recorded digest, so a wiped or
# re-created containerd root gets everything again.
#
# Environment: TRYON_IMAGE_CACHE (the exports; ~/.cache/tryon-operator/images),
# TRYON_CONTAINERD_NAMESPACE (k8s.io), TRYON_SNAPSHOTTER (overlayfs),
# TRYON_IMPORT_DISCARD_LAYERS (1, the default: drop the layer blobs once unpacked, about half the
# disk, needs a ctr with --local; 0 keeps them, e.g. for `ctr images export`).
set -euo pipefail
# shellcheck source=hack/images/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if (( $# < 2 || $# > 3 )); then
  echo "usage: $0 SOCKET CTR_BINARY [CONTAINERD_ROOT]" >&2
  exit 2
fi
socket="$1" ctr_bin="$2"
root="${3:-${TRYON_CONTAINERD_ROOT:-}}"
[[ -n "$root" ]] || fail "import: pass CONTAINERD_ROOT (3rd argument) or set TRYON_CONTAINERD_ROOT"
[[ -S "$socket" ]] || fail "import: $socket is not a socket (is containerd running?)"
[[ -x "$ctr_bin" ]] || ctr_bin="$(command -v "$ctr_bin")" || fail "import: no ctr at $2"
namespace="${TRYON_CONTAINERD_NAMESPACE:-k8s.io}"
snapshotter="${TRYON_SNAPSHOTTER:-overlayfs}"
marker="${root%/}.tryon-images"
log="$log_dir/import.log"
mkdir -p "$log_dir"

ctr() { "$ctr_bin" --address "$socket" --namespace "$namespace" "$@"; }

# containerd 2.x's ctr imports through the transfer service unless --local; --local (the
# client-side import) also works against a 1.6 daemon and is the only path that can discard
# unpacked layers. ctr 1.6 has no such flag and always imports locally.
import_flags=(--snapshotter "$snapshotter")   # unpacking is ctr's default (no --no-unpack)
if "$ctr_bin" images import --help 2>&1 | grep -q -- '--local'; then
  import_flags+=(--local)
  # Layers are kept unpacked only (the snapshot): a ~6 GB renderer image is stored once, not twice.
  if [[ "${TRYON_IMPORT_DISCARD_LAYERS:-1}" == 1 ]]; then import_flags+=(--discard-unpacked-layers); fi
fi

# The digest containerd has for REF (the manifest it imported), or nothing.
containerd_digest() { ctr images ls 2>/dev/null | awk -v r="$1" '$1 == r { print $3 }'; }
unpacked() {
  CONTAINERD_SNAPSHOTTER="$snapshotter" ctr images check "name==$1" 2>/dev/null |
    awk -v r="$1" '$1 == r && $NF == "true" { ok = 1 } END { exit !ok }'
}
recorded() { [[ -f "$marker" ]] && awk -v n="$1" '$1 == n { print $2, $3 }' "$marker"; }
record() {  # record NAME ID DIGEST: rewrite the marker with this image's line replaced
  local tmp="$marker.partial"
  { [[ -f "$marker" ]] && awk -v n="$1" '$1 != n' "$marker"; printf '%s %s %s\n' "$1" "$2" "$3"; } >"$tmp"
  mv -f "$tmp" "$marker"
}

import_one() {
  local name="$1" ref="$2" tar="$3" id="$4"
  ctr images import "${import_flags[@]}" "$tar"
  local digest; digest="$(containerd_digest "$ref")"
  [[ -n "$digest" ]] || { echo "$ref is not in containerd ($namespace) after the import" >&2; return 1; }
  # Unpacked for the kubelet's snapshotter (last column of `images check`), and all blobs there
  # unless they were discarded on purpose (then check reports "incomplete").
  local check; check="$(CONTAINERD_SNAPSHOTTER="$snapshotter" ctr images check "name==$ref")"
  echo "$check"
  unpacked "$ref" ||
    { echo "$ref is not unpacked for $snapshotter" >&2; return 1; }
  if [[ " ${import_flags[*]} " != *" --discard-unpacked-layers "* ]]; then
    awk -v r="$ref" '$1 == r && / complete / { ok = 1 } END { exit !ok }' <<<"$check" ||
      { echo "$ref is incomplete in containerd's content store" >&2; return 1; }
  fi
  record "$name" "$id" "$digest"
  echo "$ref ${digest:7:12} ($(du -h "$tar" | cut -f1))" >&3
}

: >"$log"
shopt -s nullglob
refs=("$image_cache"/*.ref)
(( ${#refs[@]} )) || fail "import: no exported images in $image_cache (run make images)"
mkdir -p "$(dirname "$marker")"
exec 7>"$marker.lock"
flock 7                                   # one import per containerd root at a time
exec 8>"$image_cache/.export.lock"
flock -s 8                                # no export half-written while we read
echo "import into $socket ($namespace, $snapshotter); log: $log"
for ref_file in "${refs[@]}"; do
  name="$(basename "$ref_file" .ref)"
  tar="$image_cache/$name.tar"
  ref="$(cat "$ref_file")"
  id="$(cat "$image_cache/$name.id" 2>/dev/null || true)"
  if [[ ! -f "$tar" || -z "$id" ]]; then
    printf '  %-28s %7s   incomplete export in %s, skipped\n' "import: $name" "" "$image_cache"
    continue
  fi
  current="$(containerd_digest "$ref")"
  if [[ -n "$current" && "$(recorded "$name")" == "$id $current" ]] && unpacked "$ref"; then
    printf '  %-28s %7s   %s up to date (%s)\n' "import: $name" "" "$ref" "${id:0:12}"
    continue
  fi
  step "import: $name" "$log" import_one "$name" "$ref" "$tar" "$id"
done
