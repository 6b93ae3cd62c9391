#!/usr/bin/env bash
# A renderer image for real-pod benchmarks of renderer code changes, without the full rebuild:
# the pushed image BASE_TAG (its 6 GB of dependencies unchanged) with this checkout's
# renderer/tryon_renderer/ copied over the installed package and byte-compiled, pushed to the local
# registry as tryon-renderer:<HEAD's 12-character commit>-on-<BASE_TAG>. Prints that tag.
# `make images` stays the way to build the product's image; this is for A/B timings on the same
# dependencies (bench/flip_timeline.py --renderer-tag). Root, buildah, the registry up.
#
#   bash bench/renderer-overlay.sh BASE_TAG
set -euo pipefail
base_tag="${1:?usage: $0 BASE_TAG (a tag of tryon-renderer in the local registry)}"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
read -r registry_repo registry_home < <(python3 -c \
  'from hack.localcluster import registry; print(registry.REPOSITORY, registry.registry_paths().home)')
[[ -z "$(git status --porcelain -- renderer/tryon_renderer)" ]] ||
  { echo "renderer-overlay: commit renderer/tryon_renderer first (the tag names the commit)" >&2; exit 1; }
tag="$(git rev-parse --short=12 HEAD)-on-$base_tag"
python3 hack/localcluster/registry.py up >/dev/null
auth=(--authfile "$registry_home/auth.json" --cert-dir "$registry_home/trust")
site=/opt/venv/lib/python3.11/site-packages/tryon_renderer
# The image `make images` pushed as BASE_TAG is usually still in buildah's storage: start from it
# there (no second copy of its layers); otherwise from the registry.
cache="${TRYON_IMAGE_CACHE:-$HOME/.cache/tryon-operator/images}"
read -r pushed_id pushed_to <"$cache/tryon-renderer.pushed" 2>/dev/null || true
if [[ "${pushed_to:-}" == *":$base_tag" ]] && buildah inspect --type image "$pushed_id" >/dev/null 2>&1; then
  base="$pushed_id"
else
  base="docker://$registry_repo/tryon-renderer:$base_tag"
fi
ctr="$(buildah from --quiet --pull-never "${auth[@]}" "$base" 2>/dev/null ||
  buildah from --quiet "${auth[@]}" "$base")"
trap 'buildah rm "$ctr" >/dev/null 2>&1 || true' EXIT
buildah copy --quiet --chown 0:0 "$ctr" renderer/tryon_renderer/ "$site/" >/dev/null
buildah run --network none --user 0:0 "$ctr" -- sh -c \
  "find $site -name '*.pyc' -delete && python -m compileall -q $site"
buildah config --label "org.opencontainers.image.revision=$(git rev-parse HEAD)-on-$base_tag" "$ctr"
buildah commit --quiet --rm "$ctr" "localhost/tryon/tryon-renderer:$tag" >/dev/null
trap - EXIT
buildah push --quiet "${auth[@]}" "localhost/tryon/tryon-renderer:$tag" \
  "docker://$registry_repo/tryon-renderer:$tag"
buildah rmi "localhost/tryon/tryon-renderer:$tag" >/dev/null
echo "$tag"
