#!/usr/bin/env bash
# Build a scratch venv with the ORIGINAL klugman 0.5 (PyPI: klugman==0.5.dev25,
# the last release) and its timex dependency, converted to Python 3 with
# lib2to3 as /work/shared/oracle/setup.sh does. Idempotent.
#   usage: python-klugman-venv.sh [VENV_DIR]     (default /tmp/stv3-klugman-venv)
# Prints the venv's klugman executable path on success.
set -euo pipefail
VENV=${1:-/tmp/stv3-klugman-venv}
PY=${PYTHON:-python3}
if [ -x "$VENV/bin/klugman" ] && "$VENV/bin/python" -c 'import klugman.klugman' 2>/dev/null; then
  echo "$VENV/bin/klugman"; exit 0
fi
rm -rf "$VENV"
"$PY" -m venv "$VENV"
VPY="$VENV/bin/python"
"$VPY" -m pip install -q --disable-pip-version-check \
    "requests" "prettytable" "iso8601==0.1.10" "ply==3.11" "six" "python-dateutil" >&2
# --no-deps: klugman 0.5 also names docopt; timex has no runtime deps beyond ply.
"$VPY" -m pip install -q --disable-pip-version-check --no-deps "klugman==0.5.dev25" "timex==0.20.0" >&2
SP=$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
cd "$SP"
# 2015 code is Python 2: convert in place (next/funcattrs excluded, see the oracle README).
"$VPY" -W ignore -m lib2to3 -w -n -x next -x funcattrs klugman timex >/dev/null 2>&1
"$VPY" -c 'import klugman.klugman, timex' >&2
echo "$VENV/bin/klugman"
