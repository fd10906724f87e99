#!/usr/bin/env bash
# The main job on the embedded default data and the shipped models.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh"
adp() { dotnet "$root/.build/adp/adp.dll" "$@"; }
adp info
adp data verify
