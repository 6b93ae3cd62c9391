#!/usr/bin/env bash
# Builds the local Python 3.11 base image (default localhost/tryon/python:3.11-bookworm) from
# Debian bookworm packages with mmdebstrap and imports it into buildah's containers-storage, so the
# Dockerfile builds with no registry: PYTHON_IMAGE=RENDERER_BASE=this image.
#
#   hack/images/build-base.sh [--force]     (root; needs mmdebstrap and buildah)
#
# It is skipped when the image already exists (--force or TRYON_BASE_FORCE=1 rebuilds it).
# The apt sources are the machine's own (/etc/apt/sources.list and sources.list.d/*.list|*.sources;
# TRYON_APT_SOURCES="FILE..." overrides). The downloaded .debs are kept in
# ${TRYON_DEB_CACHE:-~/.cache/tryon-operator/debs}, so a rebuild only fetches the package lists.
#
# Differences from python:3.11-slim: Debian's Python (3.11.2 + security fixes) lives in /usr/bin,
# not /usr/local/bin, so a virtual environment made on it only runs on this same image; pip,
# setuptools and wheel are Debian's wheels, pip-installed into /usr/local (see base-hook.sh).
set -euo pipefail
# shellcheck source=hack/images/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

force="${TRYON_BASE_FORCE:-0}"
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    *) echo "usage: $0 [--force]" >&2; exit 2 ;;
  esac
done

export TRYON_DEB_CACHE="${TRYON_DEB_CACHE:-$tryon_cache/debs}"
suite=bookworm
packages="python3.11,python3-venv,python-is-python3,ca-certificates,passwd"
# python3-wheel-whl: Debian's wheel for the `wheel` package (48 kB); python:3.11-slim has wheel.
packages+=",python3-wheel-whl"
log="$log_dir/base.log"

lock_images

if [[ "$force" != 1 ]]; then
  id="$(image_id "$base_image")"
  if [[ -n "$id" ]]; then
    printf '  %-28s %7s   %s exists (%s, %s); --force rebuilds it\n' "base: skipped" "" \
      "$base_image" "${id:0:12}" "$(image_size "$base_image")"
    exit 0
  fi
fi

for tool in mmdebstrap buildah; do
  command -v "$tool" >/dev/null || fail "base: $tool is not installed (apt-get install $tool)"
done
(( EUID == 0 )) || fail "base: mmdebstrap's root mode needs root"

mkdir -p "$log_dir"
: >"$log"
echo "base image $base_image; log: $log"

# The machine's own apt sources; files whose name ends otherwise (e.g. *.disabled) are off.
if [[ -n "${TRYON_APT_SOURCES:-}" ]]; then
  read -r -a sources <<<"$TRYON_APT_SOURCES"
else
  sources=()
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    if [[ -f "$f" ]] && grep -qEv '^[[:space:]]*(#|$)' "$f"; then sources+=("$f"); fi
  done
fi
(( ${#sources[@]} )) || fail "base: no apt sources found in /etc/apt (set TRYON_APT_SOURCES)"

work="$(mktemp -d "${TMPDIR:-/tmp}/tryon-base.XXXXXX")"
# Working containers have fixed names ($$ is this script's PID in the step subshells too), so the
# exit trap can remove whatever a failed step left.
ctr_import="tryon-base-$$" ctr_check="tryon-base-check-$$"
cleanup() {
  buildah rm "$ctr_import" "$ctr_check" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

mmdebstrap_rootfs() {
  local hook="$images_dir/base-hook.sh"
  # --skip=essential/unlink keeps the essential packages' .debs for the cache (the apt phase
  # keeps its own); mmdebstrap's cleanup still empties /var/cache/apt and the lists in the image.
  # The path excludes are what slim images leave out (docs except copyrights, man, locales).
  mmdebstrap --mode=root --variant=apt --format=tar \
    --include="$packages" \
    --dpkgopt='force-unsafe-io' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --aptopt='Acquire::Retries "3"' \
    --skip=essential/unlink \
    --setup-hook="\"$hook\" setup \"\$1\"" \
    --customize-hook="\"$hook\" customize \"\$1\"" \
    "$suite" "$work/rootfs.tar" "${sources[@]}"
  printf 'rootfs %s\n' "$(du -h "$work/rootfs.tar" | cut -f1)" >&3
}

import_rootfs() {
  local old_id; old_id="$(image_id "$base_image")"
  local ctr; ctr="$(buildah from --name "$ctr_import" scratch)"
  buildah add --quiet "$ctr" "$work/rootfs.tar" /
  # The tarball has mmdebstrap's device nodes in /dev; an image's /dev is empty (the runtime
  # mounts its own), so they are removed before the only layer is committed.
  local mnt; mnt="$(buildah mount "$ctr")"
  find "$mnt/dev" -mindepth 1 -delete
  buildah umount "$ctr" >/dev/null
  # What python:3.11-slim's config has that matters here (no ENTRYPOINT, python as the command).
  buildah config \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 \
    --cmd '["python3"]' \
    --label org.opencontainers.image.title="tryon Python 3.11 base (Debian $suite)" \
    --label org.opencontainers.image.base.name="debian:$suite" \
    --created-by "hack/images/build-base.sh (mmdebstrap $suite: $packages)" \
    "$ctr"
  buildah commit --quiet --rm "$ctr" "$base_image"
  # A forced rebuild leaves the previous image untagged; drop it unless something still uses it.
  if [[ -n "$old_id" && "$old_id" != "$(image_id "$base_image")" ]]; then
    buildah rmi "$old_id" >/dev/null 2>&1 || true
  fi
  printf '%s %s\n' "$base_image" "$(image_size "$base_image")" >&3
}

check_base() {
  # Debian's Python, pip from /usr/local, no PEP 668 marker, groupadd/useradd (passwd) present.
  local ctr; ctr="$(buildah from --name "$ctr_check" "$base_image")"
  # shellcheck disable=SC2016  # expanded in the container
  buildah run --network none "$ctr" -- sh -euc '
    python --version
    python -m pip --version | grep -F /usr/local/lib/python3.11/dist-packages/pip
    test ! -e /usr/lib/python3.11/EXTERNALLY-MANAGED
    python -m venv /tmp/venv-check && /tmp/venv-check/bin/python -m pip --version
    command -v groupadd && command -v useradd
    test -z "$(ls -A /usr/share/man 2>/dev/null)"
  '
  buildah rm "$ctr" >/dev/null
}

step "base: mmdebstrap $suite" "$log" mmdebstrap_rootfs
step "base: import" "$log" import_rootfs
step "base: check" "$log" check_base
