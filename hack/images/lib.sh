# Shared by the image scripts (sourced, not run): paths, logging and the one-line-per-step runner.
# shellcheck shell=bash
# shellcheck disable=SC2034  # the variables are for the scripts that source this file

images_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$images_dir/../.." && pwd)"
tryon_cache="${TRYON_CACHE:-$HOME/.cache/tryon-operator}"
image_cache="${TRYON_IMAGE_CACHE:-$tryon_cache/images}"
log_dir="${TRYON_IMAGE_LOG_DIR:-$repo_root/build/images}"
base_image="${TRYON_BASE_IMAGE:-localhost/tryon/python:3.11-bookworm}"

# now: seconds since the epoch with sub-second precision (bash 5 has EPOCHREALTIME).
now() { printf '%s\n' "${EPOCHREALTIME/,/.}"; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# step NAME LOG COMMAND... runs COMMAND with its output appended to LOG and prints one line:
# NAME and how long it took. COMMAND runs in the background and is waited for, so `set -e` still
# applies inside shell functions (it would not inside `if`/`||`). On failure it prints the step's
# name, the exit status, the log path and the log's last lines, and exits with that status.
# A command may print a short note for the step line to fd 3 (e.g. a size).
step() {
  local name="$1" log="$2"; shift 2
  local t0 rc=0 note_file
  t0="$(now)"
  note_file="$(mktemp)"
  printf '\n===== %s (%s)\n' "$name" "$(date -u +%FT%TZ)" >>"$log"
  "$@" >>"$log" 2>&1 3>"$note_file" </dev/null &
  wait $! || rc=$?
  local note; note="$(tr '\n' ' ' <"$note_file")"; rm -f "$note_file"
  if (( rc != 0 )); then
    printf 'FAILED %s (exit %d after %ss); log: %s\n' "$name" "$rc" "$(elapsed "$t0")" "$log" >&2
    tail -n 25 "$log" | sed 's/^/  | /' >&2
    exit "$rc"
  fi
  printf '  %-28s %7ss  %s\n' "$name" "$(elapsed "$t0")" "${note% }"
}

# fail MESSAGE: for checks outside a step.
fail() { printf 'FAILED %s\n' "$*" >&2; exit 1; }

# image_id REF: buildah's full image id (no "sha256:" prefix), or nothing when REF is not there.
image_id() {
  { buildah images --noheading --no-trunc --format '{{.ID}}' "$1" 2>/dev/null || true; } |
    head -n 1 | sed 's/^sha256://'
}
# image_size REF: the size buildah reports (e.g. "434 MB").
image_size() {
  { buildah images --noheading --format '{{.Size}}' "$1" 2>/dev/null || true; } | head -n 1
}

# One build at a time per cache (buildah locks its storage, but not our exported files).
# The lock is inherited by child scripts (build.sh runs build-base.sh), which must not take it again.
lock_images() {
  [[ "${TRYON_IMAGES_LOCKED:-}" == "$tryon_cache" ]] && return 0
  mkdir -p "$tryon_cache"
  exec 9>"$tryon_cache/images.lock"
  if ! flock -n 9; then
    echo "waiting for another image build (lock $tryon_cache/images.lock)" >&2
    flock 9
  fi
  export TRYON_IMAGES_LOCKED="$tryon_cache"
}
