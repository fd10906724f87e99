#!/usr/bin/env bash
# Builds everything and runs the test suite. Tests that need the data sets or the PyTorch reference vectors
# read them from $ADP_DATA_DIR and $ADP_REFERENCE_DIR (CI sets both; where unset, those tests are skipped).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh"
dotnet test "$root/Adp.slnx" -c Release -nologo "$@"
