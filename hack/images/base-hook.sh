#!/usr/bin/env bash
# mmdebstrap hook for build-base.sh (runs on the host, as root, with the chroot as $2).
#   base-hook.sh setup ROOT      copy the cached .debs into ROOT/var/cache/apt/archives
#   base-hook.sh customize ROOT  refresh the .deb cache, then make the Python behave like the
#                                official python:3.11-slim for the project's Dockerfile
# TRYON_DEB_CACHE names the .deb cache (build-base.sh exports it).
#
# A hook file rather than inline --customize-hook strings: mmdebstrap runs inline hooks with
# `sh -c` on the host, so a $(...) meant for the chroot would expand on the host.
set -euo pipefail

phase="$1" root="$2"
cache="${TRYON_DEB_CACHE:?TRYON_DEB_CACHE is not set}"
archives="$root/var/cache/apt/archives"

case "$phase" in
  setup)
    mkdir -p "$cache" "$archives"
    shopt -s nullglob
    debs=("$cache"/*.deb)
    echo "deb cache: ${#debs[@]} packages from $cache"
    if (( ${#debs[@]} )); then cp --reflink=auto -- "${debs[@]}" "$archives/"; fi
    ;;
  customize)
    # Keep exactly the installed packages' files, so superseded versions don't pile up in the
    # cache (apt names them PACKAGE_VERSION_ARCH.deb with an epoch's ":" as "%3a").
    debs=()
    while read -r f; do
      if [[ -f "$archives/$f" ]]; then debs+=("$archives/$f"); fi
    done < <(dpkg-query --admindir="$root/var/lib/dpkg" -W \
               -f='${Package}_${Version}_${Architecture}.deb\n' | sed 's/:/%3a/g')
    if (( ${#debs[@]} )); then
      rm -rf "$cache.new" && mkdir -p "$cache.new"
      cp --reflink=auto -- "${debs[@]}" "$cache.new/"
      rm -rf "$cache" && mv "$cache.new" "$cache"
      echo "deb cache: ${#debs[@]} packages saved to $cache"
    fi
    # Like python:3.11-slim: pip may install into the system Python (PEP 668 marker removed) and
    # pip, setuptools and wheel are pip-installed packages in /usr/local, so `python -m pip
    # uninstall --yes pip setuptools wheel` works. Debian's python3-pip would be neither: it is
    # owned by dpkg and pip refuses to remove it. A plain `pip install` as root uses Debian's
    # posix_local scheme (/usr/local/lib/python3.11/dist-packages, on sys.path); --prefix would
    # land in site-packages, which Debian's Python does not read. `env -i`: the host's PIP_* and
    # other variables must not leak into the chroot.
    rm -f "$root/usr/lib/python3.11/EXTERNALLY-MANAGED"
    # shellcheck disable=SC2016  # expanded by the chroot's shell
    chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      HOME=/root LANG=C.UTF-8 /bin/sh -euc '
        pip_whl=$(ls /usr/share/python-wheels/pip-*.whl)
        python3 "$pip_whl/pip" install --no-index --find-links=/usr/share/python-wheels \
          --no-cache-dir --disable-pip-version-check --root-user-action=ignore pip setuptools wheel
        python -m pip --version
        python -m pip list --disable-pip-version-check
        test -f /usr/local/lib/python3.11/dist-packages/pip/__init__.py
      '
    ;;
  *)
    echo "usage: $0 setup|customize ROOT" >&2
    exit 2
    ;;
esac
