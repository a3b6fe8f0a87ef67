#!/usr/bin/env bash
# Builds and starts the profile-image example on SQLite at 127.0.0.1:8288. It prints the curl
# line that sends it an event. Ctrl-C stops it; start it again and unfinished runs go on.
# Its files (databases, thumbnails) go to example-data/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${DURABLE_BUILD_DIR:-$root/build}
echo "example: building (the first time takes a few minutes)..." >&2
bash "$root/scripts/build.sh" --target profile_image >/dev/null
mkdir -p "$root/example-data"
cd "$root/example-data"
exec "$build/profile_image" "$@"
