#!/usr/bin/env bash
# Installs what Scene Cloud needs on a fresh Debian machine. Idempotent: fast when all is there.
#   scripts/setup.sh          runtime (venv + project + system packages for the demo)
#   scripts/setup.sh --dev    also test tools
set -euo pipefail
cd "$(dirname "$0")/.."
DEV=0; [ "${1:-}" = "--dev" ] && DEV=1

# System packages: CJK fonts for titles/lower thirds (switcher overlays).
APT_PKGS=(fonts-noto-cjk)
# Tests drive real publishers and browsers: Debian's chromium and firefox-esr (never downloaded
# browsers) and GStreamer's webrtcbin (through system python3-gi).
[ "$DEV" = 1 ] && APT_PKGS+=(chromium firefox-esr
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-nice gstreamer1.0-tools python3-gi
  gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 gir1.2-gst-plugins-bad-1.0)
# hls.js and other front-end packages come from npm at set-up (never a CDN at run time).
command -v npm >/dev/null 2>&1 || APT_PKGS+=(nodejs npm)
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

# Front-end packages (hls.js for the scene page and the browser tests) from npm into
# ./node_modules; the server serves them itself (web_console/assets.py), no CDN at run time.
if [ ! -f node_modules/hls.js/package.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  if command -v npm >/dev/null 2>&1; then
    echo "setup: installing npm packages into node_modules"
    npm ci --no-audit --no-fund --loglevel=error
  else
    echo "setup: WARNING: npm not found; /static/vendor/hls.min.js will answer 503 (install nodejs + npm, rerun)" >&2
  fi
fi
