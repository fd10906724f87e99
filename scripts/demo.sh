#!/usr/bin/env bash
# The main job: the ADP defense on the embedded default data (first 64 Fashion-MNIST test images) with the shipped
# models, under preprocessor-blind PGD, BPDA+EOT and full-gradient PGD+EOT at reduced budgets (stated in the
# report). Prints the table and writes the report folder reports/demo (about five minutes on 2 cores).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh"
adp() { dotnet "$root/.build/adp/adp.dll" "$@"; }
cd "$root"
adp info
rm -rf reports/demo
adp eval robust --config configs/demo-fashion-mnist.json --out reports/demo "$@"
