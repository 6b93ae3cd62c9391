#!/usr/bin/env bash
# Installs the Debian packages the project needs and the machine lacks: openssl and flock for the
# control plane; runc, the CNI plugins, nftables and iproute2 for real-node-1; buildah and
# mmdebstrap for the images; gcc + libc6-dev for the static pause binary. Does nothing when all
# are present (so it is cheap to run first every time).
set -euo pipefail

need=()
command -v openssl >/dev/null || need+=(openssl)
command -v flock >/dev/null || need+=(util-linux)
command -v runc >/dev/null || need+=(runc)
[[ -x /usr/lib/cni/bridge ]] || need+=(containernetworking-plugins)
command -v nft >/dev/null || need+=(nftables)
command -v ip >/dev/null || need+=(iproute2)
command -v buildah >/dev/null || need+=(buildah)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v gcc >/dev/null || need+=(gcc)
[[ -f /usr/lib/x86_64-linux-gnu/libc.a ]] || need+=(libc6-dev)
if ((${#need[@]})); then
  if ((EUID != 0)); then
    echo "missing Debian packages: ${need[*]} (run as root, or: sudo apt-get install ${need[*]})" >&2
    exit 1
  fi
  echo "installing Debian packages: ${need[*]}" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
