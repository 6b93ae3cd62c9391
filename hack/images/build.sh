#!/usr/bin/env bash
# `make images`: builds the operator and renderer images from the project's Dockerfile with
# buildah (no Docker engine), on the local base image from build-base.sh, and pushes each to the
# local registry (hack/localcluster/registry.py, started here when it is not running), from which
# the real node pulls them with an imagePullSecret.
#
#   hack/images/build.sh [operator] [renderer]       (default: both; root, needs buildah)
#
# Local names: localhost/tryon/tryon-operator:dev and localhost/tryon/tryon-renderer:dev (buildah's
# storage). Pushed as 127.0.0.1:5443/tryon/<name>:<tag>, the tag being the 12-character commit of
# HEAD (`registry.py tag`; "-dirty" when the image context has uncommitted edits). State next to
# the tool cache: ${TRYON_IMAGE_CACHE:-~/.cache/tryon-operator/images}/<name>.stamp (inputs),
# <name>.smoked and <name>.pushed (image id and where it went). Logs: build/images/<target>.log.
# A run whose inputs (context files, Dockerfile, build arguments, base image) hash as in the run
# that built the current image skips buildah altogether (<name>.stamp): an
# unchanged `make images` takes under a second, where buildah's own cache check of the renderer
# takes about a minute (it hashes the copied 6 GB virtual environment).
#
# Environment:
#   IMAGE_TAG            the tag pushed (default: `registry.py tag`)
#   VERSION, COMMIT      OCI labels (pyproject's version; `git rev-parse HEAD`, "-dirty" when the
#                        build context has uncommitted changes)
#   TRYON_BUILD_CA       CA bundle lent read-only to RUN steps as /etc/ssl/certs/ca-certificates.crt
#                        (default: the host's, if present; empty: none). For machines whose PyPI
#                        traffic goes through a TLS-intercepting proxy; a bind mount never lands
#                        in a layer.
#   TORCH_INDEX_URL      passed to the Dockerfile (e.g. the CPU-only index, where reachable)
#   TRYON_BUILD_ARGS     extra `buildah bud` arguments (word-split)
#   TRYON_IMAGE_SMOKE=0  skip the smoke run of each image
#   TRYON_IMAGE_PUSH=0   skip the push (and the registry)
#   TRYON_IMAGE_FORCE=1  call buildah even when the inputs are unchanged
#   TRYON_IMAGE_KEEP_OLD=1  keep the build cache of replaced images (see prune_superseded)
#   TRYON_BASE_FORCE=1   rebuild the base image too (invalidates every cached layer)
set -euo pipefail
# shellcheck source=hack/images/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

image_tag=dev  # buildah's local name; what is pushed carries the commit
image_repo="${TRYON_IMAGE_REPO:-localhost/tryon}"
targets=("$@")
(( ${#targets[@]} )) || targets=(operator renderer)
for t in "${targets[@]}"; do
  case "$t" in operator | renderer) ;; *) echo "usage: $0 [operator] [renderer]" >&2; exit 2 ;; esac
done

command -v buildah >/dev/null || fail "images: buildah is not installed (apt-get install buildah)"
(( EUID == 0 )) || fail "images: run as root (buildah's containers-storage in /var/lib/containers)"

lock_images
mkdir -p "$log_dir" "$image_cache"
echo "images: ${targets[*]}; logs in $log_dir/"

# The base image: built once, then reused (build-base.sh prints its own step lines).
"$images_dir/build-base.sh"
base_id="$(image_id "$base_image")"

# What the Dockerfile copies (see .dockerignore): the labels say "-dirty" when these differ from HEAD.
context_paths=(pyproject.toml README.md operator renderer training hack/requirements-from-pyproject.py)
version="${VERSION:-$(python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' "$repo_root/pyproject.toml")}"
if [[ -z "${COMMIT:-}" ]]; then
  # The last commit that changed what the image is built from, not HEAD: an unrelated commit
  # must not change the image id (a new id means a push, and a pull on the node, for nothing).
  COMMIT="$(git -C "$repo_root" log -1 --format=%H -- "${context_paths[@]}" Dockerfile .dockerignore 2>/dev/null)"
  COMMIT="${COMMIT:-unknown}"
  if [[ "$COMMIT" != unknown && -n "$(git -C "$repo_root" --no-optional-locks status --porcelain -- "${context_paths[@]}")" ]]; then
    COMMIT+="-dirty"
  fi
fi
commit="$COMMIT"

build_ca="${TRYON_BUILD_CA-/etc/ssl/certs/ca-certificates.crt}"
ca_args=()
if [[ -n "$build_ca" ]]; then
  [[ -f "$build_ca" ]] || fail "images: TRYON_BUILD_CA=$build_ca is not a file"
  ca_args=(-v "$build_ca:/etc/ssl/certs/ca-certificates.crt:ro")
fi
read -r -a extra_args <<<"${TRYON_BUILD_ARGS:-}"

image_name() { echo "tryon-$1"; }                        # operator -> tryon-operator
image_ref() { echo "$image_repo/$(image_name "$1"):$image_tag"; }

# context_stamp: a hash of everything the build depends on: the Dockerfile, .dockerignore, the
# files .dockerignore lets into the context (its `!` lines; .dockerignore starts with `*`), their
# modes, the build arguments and the base image's id. Empty when .dockerignore has another shape
# (then every run calls buildah). Hashing more than the context only costs a needless build.
context_stamp() {
  local ignore="$repo_root/.dockerignore"
  [[ -f "$ignore" && "$(grep -Ev '^[[:space:]]*(#|$)' "$ignore" | head -n 1)" == "*" ]] || return 0
  local includes=()
  while read -r line; do includes+=("${line#!}"); done < <(grep -E '^!' "$ignore" | sed 's:/*$::')
  (
    cd "$repo_root"
    printf '%s\n' "$base_id" "$version" "$commit" "${TORCH_INDEX_URL:-}" "${extra_args[*]}" "$build_ca"
    sha256sum Dockerfile .dockerignore
    find "${includes[@]}" \( -name __pycache__ -o -name '*.egg-info' \) -prune -o ! -name '*.pyc' \
      -printf '%y %m %p %l\n' | LC_ALL=C sort
    find "${includes[@]}" \( -name __pycache__ -o -name '*.egg-info' \) -prune -o -type f ! -name '*.pyc' \
      -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum
  ) | sha256sum | cut -d' ' -f1
}

# prune_superseded OLD_ID NEW_ID: after a rebuild, remove the untagged images whose top layer only
# the replaced image had (its final-stage chain in the --layers cache: for the renderer a ~6 GB
# copy of the virtual environment per rebuild). Earlier stages' cache (the torch layer) and
# every tagged image are kept. TRYON_IMAGE_KEEP_OLD=1 keeps everything.
diff_ids() { buildah inspect --type image --format '{{range .OCIv1.RootFS.DiffIDs}}{{println .}}{{end}}' "$1"; }
prune_superseded() {
  local old="$1" new="$2"
  [[ -n "$old" && "$old" != "$new" && "${TRYON_IMAGE_KEEP_OLD:-0}" != 1 ]] || return 0
  local keep unique id names top removed=0
  keep="$(buildah images --noheading --no-trunc --format '{{.ID}} {{.Name}}' | sed 's/^sha256://' |
    awk '$2 != "<none>" { print $1 }' | sort -u | while read -r id; do diff_ids "$id"; done | sort -u)"
  unique="$({ diff_ids "$old" 2>/dev/null || true; } | sort -u | comm -23 - <(printf '%s\n' "$keep"))"
  [[ -n "$unique" ]] || return 0
  while read -r id names; do
    [[ "$names" == "<none>" ]] || continue
    # (gone already: removing an image also removes its untagged parents)
    top="$(diff_ids "$id" 2>/dev/null | tail -n 1)" || continue
    if [[ -n "$top" ]] && grep -qxF "$top" <<<"$unique"; then
      buildah rmi "$id" >/dev/null && removed=$((removed + 1)) || true
    fi
  done < <(buildah images --all --noheading --no-trunc --format '{{.ID}} {{.Name}}' | sed 's/^sha256://')
  echo "pruned $removed superseded cache images" >&3
}

build_target() {
  local target="$1" ref name old_id stamp; ref="$(image_ref "$target")"
  name="$(image_name "$target")"
  old_id="$(image_id "$ref")"
  stamp="$(context_stamp)"
  # Nothing changed since the build that made the current image: skip buildah, whose cache check
  # alone takes a minute for the renderer (it hashes the copied virtual environment).
  if [[ -n "$stamp" && -n "$old_id" && "${TRYON_IMAGE_FORCE:-0}" != 1 &&
        "$(cat "$image_cache/$name.stamp" 2>/dev/null)" == "$stamp $old_id" ]]; then
    printf 'unchanged context, skipped: %s %s (%s)\n' "$ref" "$(image_size "$ref")" "${old_id:0:12}" >&3
    return 0
  fi
  rm -f "$image_cache/$name.stamp"
  # --network host: no netavark bridge or firewall rules for RUN steps. --layers: each instruction
  # is cached, so an unchanged build costs only the cache lookups. --force-rm: a failed step's
  # working container (for the renderer, gigabytes) is removed too.
  buildah bud --layers --force-rm --network host \
    "${ca_args[@]}" \
    --build-arg "PYTHON_IMAGE=$base_image" \
    --build-arg "RENDERER_BASE=$base_image" \
    --build-arg "VERSION=$version" \
    --build-arg "COMMIT=$commit" \
    ${TORCH_INDEX_URL:+--build-arg "TORCH_INDEX_URL=$TORCH_INDEX_URL"} \
    "${extra_args[@]}" \
    --target "$target" \
    --tag "$ref" \
    --file "$repo_root/Dockerfile" \
    "$repo_root"
  local id; id="$(image_id "$ref")"
  if [[ -n "$stamp" ]]; then printf '%s %s\n' "$stamp" "$id" >"$image_cache/$name.stamp"; fi
  printf '%s %s (%s)\n' "$ref" "$(image_size "$ref")" "${id:0:12}" >&3
  prune_superseded "$old_id" "$id"
}

# smoke TARGET: run the image's own program once in a throwaway container (buildah run --network none with
# runc; containers get buildah's default rlimits, which work without CAP_SYS_RESOURCE), check
# that pip is gone and the lent CA bundle did not land in a layer. Once per image id.
smoke_target() {
  local target="$1" ref ctr id; ref="$(image_ref "$target")"
  id="$(image_id "$ref")"
  if [[ "$(cat "$image_cache/$(image_name "$target").smoked" 2>/dev/null)" == "$id" ]]; then
    echo "passed before (${id:0:12}), skipped" >&3
    return 0
  fi
  ctr="tryon-smoke-$target-$$"
  buildah rm "$ctr" >/dev/null 2>&1 || true
  buildah from --quiet --pull-never --name "$ctr" "$ref" >/dev/null
  trap 'buildah rm "$ctr" >/dev/null 2>&1 || true' EXIT
  case "$target" in
    operator)
      buildah run --network none --user 10001:10001 "$ctr" -- tryon-operator --help
      buildah run --network none --user 10001:10001 "$ctr" -- python -c \
        'import tryon_operator, kopf, kubernetes, mlflow; print("imports ok")'
      ;;
    renderer)
      buildah run --network none --user 10001:10001 "$ctr" -- python -c \
        'import torch, tryon_renderer, fastapi, uvicorn; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())'
      buildah run --network none --user 10001:10001 "$ctr" -- tryon-renderer --help
      ;;
  esac
  # Nothing installs packages at run time: pip must be gone from the final image.
  if buildah run --network none "$ctr" -- python -c 'import pip' 2>/dev/null; then
    echo "pip is still importable in $ref" >&2
    return 1
  fi
  # The CA bundle lent to the build must not have landed in a layer: the image's bundle is still
  # the base image's (Debian's), which the Dockerfile never changes.
  local base_ctr="tryon-smoke-base-$$" mnt base_mnt
  buildah rm "$base_ctr" >/dev/null 2>&1 || true
  buildah from --quiet --pull-never --name "$base_ctr" "$base_image" >/dev/null
  trap 'buildah rm "$ctr" "$base_ctr" >/dev/null 2>&1 || true' EXIT
  mnt="$(buildah mount "$ctr")" base_mnt="$(buildah mount "$base_ctr")"
  if ! cmp "$base_mnt/etc/ssl/certs/ca-certificates.crt" "$mnt/etc/ssl/certs/ca-certificates.crt"; then
    echo "/etc/ssl/certs/ca-certificates.crt in $ref differs from the base image's" >&2
    return 1
  fi
  buildah rm "$base_ctr" >/dev/null
  buildah rm "$ctr" >/dev/null
  trap - EXIT
  printf '%s\n' "$id" >"$image_cache/$(image_name "$target").smoked"
  echo "ok" >&3
}

# push TARGET: to the local registry (hack/localcluster/registry.py) as
# $registry_repo/<name>:$push_tag, which the real node pulls with an imagePullSecret. buildah sends
# only the blobs the registry lacks, so an unchanged image under a new commit tag costs a manifest
# (0.4 s for the renderer; its first push, 3.2 GB gzip, took 65-86 s). Skipped when this image id
# was pushed under this reference last time (<name>.pushed). The registry keeps the last two
# images of each repository (`registry.py pushed`).
push_target() {
  local target="$1" ref id name dest; ref="$(image_ref "$target")"
  name="$(image_name "$target")"
  id="$(image_id "$ref")"
  [[ -n "$id" ]] || { echo "no image $ref" >&2; return 1; }
  dest="$registry_repo/$name:$push_tag"
  if [[ "$(cat "$image_cache/$name.pushed" 2>/dev/null)" == "$id $dest" ]]; then
    echo "unchanged (${id:0:12}), pushed before as $dest" >&3
    return 0
  fi
  buildah push --quiet --authfile "$registry_home/auth.json" --cert-dir "$registry_home/trust" \
    --digestfile "$image_cache/$name.digest" "$ref" "docker://$dest"
  printf '%s %s\n' "$id" "$dest" >"$image_cache/$name.pushed"
  # older images than the last two go, with their blobs (3.2 GB per renderer)
  python3 "$registry_py" pushed "$name" "$(cat "$image_cache/$name.digest")"
  # what the registry replaced: the docker-archive exports of earlier versions of this script
  rm -f "$image_cache/$name.tar" "$image_cache/$name.id" "$image_cache/$name.ref"
  echo "$dest" >&3
}

registry_py="$repo_root/hack/localcluster/registry.py"
if [[ "${TRYON_IMAGE_PUSH:-1}" != 0 ]]; then
  push_tag="${IMAGE_TAG:-$(python3 "$registry_py" tag)}"
  registry_repo="$(PYTHONPATH="$repo_root" python3 -c 'from hack.localcluster import registry; print(registry.REPOSITORY)')"
  registry_home="$(PYTHONPATH="$repo_root" python3 -c 'from hack.localcluster import registry; print(registry.registry_paths().home)')"
  step "registry: up" "$log_dir/registry.log" python3 "$registry_py" up
fi

for target in "${targets[@]}"; do
  log="$log_dir/$target.log"
  : >"$log"
  step "$target: build" "$log" build_target "$target"
  if [[ "${TRYON_IMAGE_SMOKE:-1}" != 0 ]]; then step "$target: smoke" "$log" smoke_target "$target"; fi
  if [[ "${TRYON_IMAGE_PUSH:-1}" != 0 ]]; then step "$target: push" "$log" push_target "$target"; fi
done
