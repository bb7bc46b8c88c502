#!/usr/bin/env bash
# Installs what Scene Cloud needs on a fresh Debian machine. Idempotent: fast when all is there.
#   scripts/setup.sh          runtime (venv + project + system packages for the demo)
#   scripts/setup.sh --dev    also test tools
set -euo pipefail
cd "$(dirname "$0")/.."
DEV=0; [ "${1:-}" = "--dev" ] && DEV=1

# System packages: CJK fonts for titles/lower thirds (switcher overlays).
APT_PKGS=(fonts-noto-cjk)
# Tests drive a real browser (Debian's chromium, never a downloaded one).
[ "$DEV" = 1 ] && APT_PKGS+=(chromium)
missing=()
for p in "${APT_PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" != 0 ] && SUDO="sudo"
  echo "setup: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.scenecloud-installed
extras=""; [ "$DEV" = 1 ] && extras="[dev]"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)$extras"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing Python packages into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".$extras"
  echo "$want" > "$stamp"
fi
