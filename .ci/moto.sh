#!/usr/bin/env bash
# Installs moto's server, pinned to one version, into a virtualenv and prints the virtualenv's path.
#
# The AWS tests run against `moto_server`, a real implementation of the Lambda, S3 and IAM APIs on
# loopback. The virtualenv lives at `$LAMINA_MOTO_VENV`, or `target/moto-venv` in the repository.
# Running the script again is cheap: a virtualenv stamped with the pinned version is left alone.
# It takes no lock itself; the test helper that calls it holds one, so parallel tests do not race.
set -euo pipefail

MOTO_VERSION=5.2.5

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${LAMINA_MOTO_VENV:-$root/target/moto-venv}"
stamp="$venv/.lamina-moto-$MOTO_VERSION"

if [[ -f "$stamp" && -x "$venv/bin/moto_server" ]]; then
    echo "$venv"
    exit 0
fi

# A virtualenv left half-built by an interrupted run is rebuilt from scratch.
python3 -m venv --clear "$venv" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "moto[server]==$MOTO_VERSION" >&2
touch "$stamp"
echo "$venv"
