#!/usr/bin/env bash
# Full disk and read-only output: `adp` writing a checkpoint (`train score --resume`, `strip`) and a report
# (`eval report`, which rewrites results.json, results.csv, report.md and the plots) to
#   1. a full filesystem: a 1 MiB tmpfs this script mounts and fills (needs root, or CAP_SYS_ADMIN);
#   2. a read-only one: the same tmpfs remounted read-only (as root; otherwise a folder with mode 555).
# Each write must fail with exit code 2 and one line on stderr naming the file and the reason ("No space left on
# device", "Read-only file system"), never "internal error"; the previous checkpoint and report files must be left
# byte for byte as they were, and no temporary file may be left behind.
# Prints "PASS"; exits 77 with "SKIP: ..." when no tmpfs can be mounted (the read-only case then runs on a mode-555
# folder where that means something, i.e. not as root); exits 1 on any failure. Everything lives in one temp folder,
# unmounted and deleted on exit. Needs the tool built (scripts/setup.sh) and the MNIST data ($ADP_DATA_DIR).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
adp_dll="$root/.build/adp/adp.dll"
start=$SECONDS
say() { echo "full-disk: $*"; }
failed=0
fail() { echo "full-disk: FAIL: $*" >&2; failed=1; }
[ -f "$adp_dll" ] || { fail "$adp_dll not found; build it first (scripts/setup.sh)"; exit 1; }
[ -n "${ADP_DATA_DIR:-}" ] || { fail "ADP_DATA_DIR must point at the data sets"; exit 1; }

tmp="$(mktemp -d "${TMPDIR:-/tmp}/adp-full-disk.XXXXXX")"
mnt="$tmp/mnt"
mounted=0
cleanup() {
  [ "$mounted" = 1 ] && umount "$mnt" 2>/dev/null || true
  chmod -R u+w "$tmp" 2>/dev/null || true
  if [ "$failed" = 0 ] || [ "${ADP_FULL_DISK_KEEP:-0}" != 1 ]; then rm -rf "$tmp"; fi
}
trap cleanup EXIT
adp() { dotnet "$adp_dll" --threads 1 "$@"; }

# --- what is written over: a resumable checkpoint and a report folder ----------------------------------------------
work="$tmp/work"
mkdir -p "$work" "$mnt"
adp train score --dataset mnist --ngf 2 --levels 3 --iterations 2 --batch-size 2 --train-images 16 --checkpoint-every 0 \
  --out "$work/score.ckpt" >"$tmp/train.log" 2>&1 || { fail "training the checkpoint failed: $(tail -3 "$tmp/train.log")"; exit 1; }
cat >"$work/eval.json" <<EOF
{"Dataset": "mnist", "Images": 2, "Classifier": "$root/models/mnist-smallcnn.ckpt", "Score": "$work/score.ckpt", "Runs": 1,
 "Seeds": [0], "BatchSize": 2, "SanityUnbounded": false, "Purifier": {"Steps": 1},
 "Attacks": [{"Kind": "None", "Target": "Blind"}, {"Kind": "Pgd", "Target": "Bare", "Epsilon": 0.1, "Iterations": 1}]}
EOF
adp eval robust --config "$work/eval.json" --out "$work/report" >"$tmp/eval.log" 2>&1 \
  || { fail "making the report failed: $(tail -3 "$tmp/eval.log")"; exit 1; }

digest() { (cd "$1" && find . -type f ! -path './score.ckpt.tb/*' ! -name 'filler*' -print0 | sort -z | xargs -0 sha256sum); }

# expect WHAT REASON FILE -- ARGS: the command fails with exit 2 and one line naming FILE and REASON.
expect() {
  local what=$1 reason=$2 file=$3; shift 4
  local code=0
  adp "$@" >"$tmp/out" 2>"$tmp/err" || code=$?
  local lines; lines=$(grep -c . "$tmp/err" || true)
  if [ "$code" != 2 ] || [ "$lines" != 1 ] || ! grep -q -- "$file" "$tmp/err" || ! grep -qi -- "$reason" "$tmp/err" \
     || grep -q "internal error" "$tmp/err"; then
    fail "$what: expected exit 2 and one line naming $file and '$reason'; got exit $code and: $(cat "$tmp/err")"
  else
    say "$what: exit 2: $(cat "$tmp/err")"
  fi
}

# check_intact WHAT: the files are as they were and no temporary file is left.
check_intact() {
  local now; now=$(digest "$mnt")
  [ "$now" = "$before" ] || fail "$1: files changed: $(diff <(echo "$before") <(echo "$now") | head -5)"
  local temps; temps=$(find "$mnt" -name '*.tmp[0-9]*' | head -3)
  [ -z "$temps" ] || fail "$1: temporary files left: $temps"
}

# --- 1. full filesystem ----------------------------------------------------------------------------------------------
if mount -t tmpfs -o size=1m,mode=755 adp-full-disk "$mnt" 2>"$tmp/mount.err"; then
  mounted=1
  cp "$work/score.ckpt" "$mnt/score.ckpt"
  cp -r "$work/report" "$mnt/report"
  before=$(digest "$mnt")
  # Leave 64 KiB: room for the training log, not for a checkpoint (~150 KB).
  dd if=/dev/zero of="$mnt/filler" bs=4k 2>/dev/null || true
  truncate -s "-65536" "$mnt/filler"
  expect "full disk, train score --resume" "No space left on device" "score.ckpt" -- \
    train score --resume --iterations 4 --out "$mnt/score.ckpt"
  check_intact "full disk, train score --resume"
  dd if=/dev/zero of="$mnt/filler2" bs=4k 2>/dev/null || true  # now full
  expect "full disk, strip" "No space left on device" "score.ckpt" -- strip "$work/score.ckpt" --out "$mnt/score.ckpt"
  check_intact "full disk, strip"
  expect "full disk, eval report" "No space left on device" "$mnt/report/" -- eval report "$mnt/report"
  check_intact "full disk, eval report"
  rm -f "$mnt/filler" "$mnt/filler2"

  # --- 2. read-only filesystem ----------------------------------------------------------------------------------
  mount -o remount,ro "$mnt"
  expect "read-only, strip" "Read-only file system" "score.ckpt" -- strip "$work/score.ckpt" --out "$mnt/score.ckpt"
  check_intact "read-only, strip"
  expect "read-only, eval report" "Read-only file system" "$mnt/report" -- eval report "$mnt/report"
  check_intact "read-only, eval report"
  expect "read-only, train score --resume" "Read-only file system" "score.ckpt" -- \
    train score --resume --iterations 4 --out "$mnt/score.ckpt"
  check_intact "read-only, train score --resume"
  [ "$failed" = 0 ] || exit 1
  say "PASS: full and read-only filesystems give one-line errors, exit 2, previous files intact ($((SECONDS - start)) s)"
  exit 0
fi

# --- no tmpfs: the read-only folder alone, where permissions bind (not root) ------------------------------------------
if [ "$(id -u)" != 0 ]; then
  cp "$work/score.ckpt" "$mnt/score.ckpt"; cp -r "$work/report" "$mnt/report"
  before=$(digest "$mnt")
  chmod -R a-w "$mnt"
  expect "read-only folder, strip" "permission" "score.ckpt" -- strip "$work/score.ckpt" --out "$mnt/score.ckpt"
  check_intact "read-only folder, strip"
  expect "read-only folder, eval report" "permission" "$mnt/report" -- eval report "$mnt/report"
  check_intact "read-only folder, eval report"
  [ "$failed" = 0 ] || exit 1
fi
echo "full-disk: SKIP: cannot mount a tmpfs here ($(head -1 "$tmp/mount.err")); the full-disk case needs root or CAP_SYS_ADMIN"
exit 77
