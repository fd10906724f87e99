#!/usr/bin/env bash
# The main job: the ADP defense on the embedded default data (first 40 Fashion-MNIST test images) with the shipped
# models, under preprocessor-blind PGD, BPDA+EOT and full-gradient APGD+EOT at reduced budgets (stated in the
# report). Prints the table and writes the report folder reports/demo (about five minutes on 2 cores).
#   ./scripts/demo.sh [fashion-mnist|cifar10] [eval robust options…]
# cifar10: the same study on the first 24 CIFAR-10 test images with the shipped CIFAR-10 score model and ResNet at
# ε = 8/255 (needs the CIFAR-10 test batch: ADP_DATA_DIR, --data-dir, or `./scripts/adp data fetch cifar-10`);
# report folder reports/demo-cifar10.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
name="fashion-mnist"
case "${1:-}" in fashion-mnist|cifar10) name="$1"; shift;; esac
"$root/scripts/setup.sh"
adp() { dotnet "$root/.build/adp/adp.dll" "$@"; }
cd "$root"
out="reports/demo"; [ "$name" = fashion-mnist ] || out="reports/demo-$name"
adp info
rm -rf "$out"
adp eval robust --config "configs/demo-$name.json" --out "$out" "$@"
