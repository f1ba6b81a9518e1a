#!/usr/bin/env bash
# The one entry point: ./build.sh run | test | bench | lint | venv
set -euo pipefail
cd "$(dirname "$0")"

VENV=.venv
PY=$VENV/bin/python

need_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
can_be_root() { [ "$(id -u)" -eq 0 ] || sudo -n true 2>/dev/null; }

# A fresh Debian 12 has python3 but not always its venv module (package python3-venv).
ensure_python() {
  if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    echo "==> installing python3-venv (apt)"
    need_root apt-get update -q
    need_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv
  fi
}

# The venv is rebuilt only when pyproject.toml changes (its hash is the stamp).
ensure_venv() {
  ensure_python
  local stamp="$VENV/.installed" want
  want=$(sha256sum pyproject.toml | cut -d' ' -f1)
  if [ -x "$PY" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return
  fi
  echo "==> setting up $VENV"
  [ -x "$PY" ] || python3 -m venv "$VENV"
  "$PY" -m pip install -q --upgrade pip
  "$PY" -m pip install -q -e '.[dev]'
  echo "$want" > "$stamp"
}

cmd_venv() { ensure_venv; }

cmd_run() {
  ensure_venv
  exec "$VENV/bin/qey" run "$@"
}

cmd_lint() {
  ensure_venv
  echo "==> ruff"
  "$VENV/bin/ruff" check appliance image tests bench examples
  "$VENV/bin/ruff" format --check appliance image tests bench examples
  echo "==> mypy --strict appliance/ image/"
  "$VENV/bin/mypy" --strict appliance image
}

# What the tests need from Debian, installed once and named in full (no Recommends: what a
# fresh machine gets is exactly this list): Chromium for the browser tests (never a browser
# download), strace for the no-egress test, nftables for the egress policy's rules, RAUC,
# squashfs-tools and openssl for update bundles, nats-server for the fleet's broker.
ensure_test_tools() {
  local missing=()
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  command -v strace >/dev/null 2>&1 || missing+=(strace)
  command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ] || missing+=(nftables)
  # update bundles: RAUC makes and checks them, unsquashfs reads them, openssl signs them
  command -v rauc >/dev/null 2>&1 || missing+=(rauc)
  command -v unsquashfs >/dev/null 2>&1 || missing+=(squashfs-tools)
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
  [ -x /usr/sbin/nats-server ] || missing+=(nats-server)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "==> installing ${missing[*]} (apt)"
    need_root apt-get update -q
    need_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      "${missing[@]}"
  fi
}

# Everything, the image boot tests included (they build both images, cached by input hash,
# and boot them under TCG: a few minutes warm; a cold arm64 base takes ~15 more). For a quick
# loop without them: ./build.sh test -m "not qemu and not qemu_arm64"
cmd_test() {
  ensure_venv
  ensure_test_tools
  local select=()
  if can_be_root; then
    ensure_image_tools qemu-amd64
    ensure_image_tools qemu-arm64
  else
    # mmdebstrap, chroot and binfmt need root: said loudly, never silently passed
    echo "==> NOT running the QEMU image tests (markers qemu, qemu_arm64): not root, no sudo"
    select=(-m "not qemu and not qemu_arm64")
  fi
  cmd_lint
  echo "==> pytest"
  # the example extensions' own tests too, unless the arguments name what to run
  local paths=(tests examples/*/tests) a
  for a in "$@"; do if [ -e "${a%%::*}" ]; then paths=(); fi; done
  "$VENV/bin/pytest" -q "${select[@]}" "${paths[@]}" "$@"
}

# The router model (models/export_router.py) is built in its own venv: torch is needed to
# export it, never to run it. The build checks the result byte for byte against SHA256SUMS.
MODELS_VENV=.venv-models

cmd_model() {
  ensure_python
  if [ ! -x "$MODELS_VENV/bin/python" ] || ! cmp -s models/requirements.txt "$MODELS_VENV/.installed"; then
    echo "==> setting up $MODELS_VENV (torch CPU and the export's pinned packages)"
    [ -x "$MODELS_VENV/bin/python" ] || python3 -m venv "$MODELS_VENV"
    "$MODELS_VENV/bin/python" -m pip install -q --upgrade pip
    # torch first and alone, pinned: the CPU build that pip finds; nothing may pull another
    "$MODELS_VENV/bin/python" -m pip install -q "torch==2.13.0"
    "$MODELS_VENV/bin/python" -m pip install -q -r models/requirements.txt
    cp models/requirements.txt "$MODELS_VENV/.installed"
  fi
  "$MODELS_VENV/bin/python" models/export_router.py "$@"
}

cmd_eval_router() {
  ensure_venv
  "$PY" models/eval_router.py "$@"
}

cmd_eval_planner() {
  ensure_venv
  "$PY" models/eval_planner.py "$@"
}

cmd_bench() {
  ensure_venv
  local failed=0
  for b in bench/bench_*.py; do
    echo "==> $b"
    "$PY" "$b" || failed=1
  done
  return $failed
}

# The OS image (image/build.py) and booting it under QEMU (image/qemu.py). The host tools come
# from Debian, installed once; the arm64 image's maintainer scripts run under qemu-user.
image_target() {
  local t=qemu-amd64 a
  for a in "$@"; do case "$a" in --target=*) t=${a#--target=} ;; esac; done
  while [ $# -gt 0 ]; do [ "$1" = --target ] && [ $# -gt 1 ] && t=$2; shift; done
  echo "$t"
}

# Every package named, no Recommends: a fresh machine gets exactly this list. mmdebstrap's
# Recommends were checked one by one (root mode, a tarball): it uses gpg to find the mirror's
# signed-by key and arch-test for arm64; fakechroot, uidmap and distro-info serve other modes.
ensure_image_tools() {
  local target=$1 missing=() tool pkg
  for tool in mmdebstrap:mmdebstrap mkfs.ext4:e2fsprogs mkfs.fat:dosfstools mcopy:mtools \
    sfdisk:fdisk zstd:zstd qemu-img:qemu-utils depmod:kmod gpg:gpg \
    openssl:openssl rauc:rauc mksquashfs:squashfs-tools; do  # the last three: update bundles
    command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool#*:}")
  done
  case "$target" in
    qemu-amd64)
      command -v qemu-system-x86_64 >/dev/null 2>&1 || missing+=(qemu-system-x86)
      [ -f /usr/share/OVMF/OVMF_CODE_4M.fd ] || missing+=(ovmf) ;;
    *)
      command -v qemu-system-aarch64 >/dev/null 2>&1 || missing+=(qemu-system-arm)
      [ -f /usr/share/AAVMF/AAVMF_CODE.fd ] || missing+=(qemu-efi-aarch64)
      [ -e /usr/lib/binfmt.d/qemu-aarch64.conf ] || missing+=(qemu-user-static binfmt-support)
      # Recommends the build relies on, named: mmdebstrap needs arch-test for a foreign
      # architecture; the virt machine's virtio-net-pci needs iPXE's efi-virtio.rom
      command -v arch-test >/dev/null 2>&1 || missing+=(arch-test)
      [ -e /usr/lib/ipxe/qemu/efi-virtio.rom ] || missing+=(ipxe-qemu) ;;
  esac
  if [ ${#missing[@]} -gt 0 ]; then
    echo "==> installing ${missing[*]} (apt)"
    need_root apt-get update -q
    need_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      "${missing[@]}"
  fi
  if [ "$target" != qemu-amd64 ] && [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    need_root mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || true
    need_root sh -c 'cat /usr/lib/binfmt.d/qemu-aarch64.conf > /proc/sys/fs/binfmt_misc/register' \
      2>/dev/null || true
  fi
}

cmd_image() {
  ensure_venv
  ensure_image_tools "$(image_target "$@")"
  need_root "$PY" image/build.py "$@"
}

# A signed update bundle of a built image (image/bundle.py): as root, like the image, so that
# both use the same update key (~/.config/qey/update-keys of the user that builds).
cmd_bundle() {
  ensure_venv
  ensure_image_tools "$(image_target "$@")"
  need_root "$PY" image/bundle.py "$@"
}

cmd_qemu() {
  local target
  target=$(image_target "$@")
  cmd_image --target "$target"
  exec "$PY" image/qemu.py "$@"
}

cmd_qemu_test() {
  ensure_venv
  ensure_image_tools qemu-amd64
  ensure_image_tools qemu-arm64
  "$VENV/bin/pytest" -q -s tests/qemu "$@"
}

usage() {
  cat <<'USAGE'
usage: ./build.sh COMMAND
  run     set up .venv and run the appliance on this host (simulated hardware)
  test    set up .venv, then ruff, mypy --strict and every test, the QEMU image boots
          included (extra args go to pytest; -m "not qemu and not qemu_arm64": without them)
  lint    ruff and mypy only
  bench   run the benchmarks in bench/ (figures and ratios to their baselines)
  venv    only set up .venv
  model   rebuild the router model in .venv-models and check its sha256 (--record: write it)
  eval-router  the router's accuracy, confusion, rejection and latency on models/ test split
  eval-planner the planner's exact-plan, per-construct and parameter accuracy and latency on
               models/plans/ (--split tune|test, --show to print the misses)
  image   build the OS image: --target qemu-amd64|qemu-arm64|qey0 (build/image/TARGET/)
  bundle  a signed update bundle of a built image: --target T (build/image/T/qey-T-VERSION.raucb)
  qemu    build (cached) and boot the image under QEMU: --target qemu-amd64|qemu-arm64
  qemu-test  only the QEMU boot tests (tests/qemu: amd64, then arm64)
USAGE
}

case "${1:-}" in
  run|test|bench|lint|venv|model) cmd=$1; shift; "cmd_$cmd" "$@" ;;
  eval-router) shift; cmd_eval_router "$@" ;;
  eval-planner) shift; cmd_eval_planner "$@" ;;
  image|qemu|bundle) cmd=$1; shift; "cmd_$cmd" "$@" ;;
  qemu-test) shift; cmd_qemu_test "$@" ;;
  *) usage; exit 2 ;;
esac
