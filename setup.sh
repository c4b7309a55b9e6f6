#!/usr/bin/env bash
# Set up Tutti on a Debian machine (run as root, or with sudo available): system packages,
# a Python 3.11 virtual environment in .venv, and the pinned requirements. Idempotent: a
# second run with nothing changed checks and returns in a few seconds.
set -euo pipefail
cd "$(dirname "$0")"

APT_PACKAGES=(libportaudio2 jackd2 fluidsynth fluid-soundfont-gm musescore-general-soundfont-small libsndfile1 alsa-utils)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "setup: installing system packages: ${missing[*]}"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    # jackd2 asks about realtime priority; answer non-interactively.
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || { echo "setup: $PYTHON not found: install Python 3.11 (the CPU torch wheel is built for it)" >&2; exit 2; }
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv

stamp=.venv/.requirements.sha256
want=$(cat requirements-train.txt requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "setup: installing Python requirements into .venv"
    # torch first, from the pinned CPU wheel, so nothing later pulls a CUDA build.
    .venv/bin/pip install -q --disable-pip-version-check "$(grep '^torch==' requirements-train.txt)"
    .venv/bin/pip install -q --disable-pip-version-check -r requirements-train.txt -r requirements.txt -r requirements-dev.txt
    echo "$want" > "$stamp"
fi
echo "setup: ready (.venv/bin/python)"
