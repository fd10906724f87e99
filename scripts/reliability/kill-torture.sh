#!/usr/bin/env bash
# Kill torture: `adp train score`, `adp train classifier` and `adp eval robust` (tiny settings) are each killed with
# SIGKILL at ADP_TORTURE_KILLS (default 20) random moments and resumed every time (--resume for training, the same
# --out for the evaluation). After every kill:
#   - every file the run has written is whole (checkpoints and adversarial sets parse as safetensors, JSON parses,
#     CSV rows are whole, PNGs end in IEND with right CRCs), and `adp` loads them: `adp export` loads the score
#     checkpoint, `adp eval clean` the classifier, `adp eval report` rebuilds the report from a copy of the folder;
#   - nothing committed before the kill is lost (the checkpoint's iteration never goes back; every per-image result in
#     progress.json before the kill is still there): "bytes lost" counts the committed bytes that were.
# A run that ends before its next kill is compared with an uninterrupted run of the same seed: the final weights (every
# tensor but the optimizer state; metadata but the save time) and the final per-image results, adversarial examples,
# results.json/csv (without timings) and example grids must be bit-identical; then a fresh run starts and the kills go
# on until ADP_TORTURE_KILLS were made. Kill moments are drawn from a seeded generator (ADP_TORTURE_SEED, default 1):
# one in six uniform over an attempt's startup, the others uniform over the work it has left (see work_delay).
# Temporary files left behind by killed writes are reported (bytes) and must be gone when a run has finished.
#
# Everything is written under one temp folder (deleted at the end; kept on failure or with ADP_TORTURE_KEEP=1).
# Needs the tool built (scripts/setup.sh), python3, and the MNIST training split ($ADP_DATA_DIR). Every adp process
# runs with --threads 1. Prints per job: kills survived, bytes lost, temporary bytes left, time; "PASS" at the end.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
adp_dll="$root/.build/adp/adp.dll"
check="$here/torture_check.py"
kills_wanted="${ADP_TORTURE_KILLS:-20}"
seed="${ADP_TORTURE_SEED:-1}"
start_all=$SECONDS

say() { echo "kill-torture: $*"; }
failed=0
fail() { echo "kill-torture: FAIL: $*" >&2; failed=1; }
[ -f "$adp_dll" ] || { fail "$adp_dll not found; build it first (scripts/setup.sh)"; exit 1; }
command -v python3 >/dev/null || { fail "python3 is needed (apt-get install python3)"; exit 1; }
[ -n "${ADP_DATA_DIR:-}" ] || { fail "ADP_DATA_DIR must point at the data sets (MNIST training split)"; exit 1; }

tmp="$(mktemp -d "${TMPDIR:-/tmp}/adp-kill-torture.XXXXXX")"
cleanup() {
  if [ "$failed" = 0 ] && [ "${ADP_TORTURE_KEEP:-0}" != 1 ]; then rm -rf "$tmp"; else echo "kill-torture: files kept in $tmp" >&2; fi
}
trap cleanup EXIT

adp() { dotnet "$adp_dll" --threads 1 "$@"; }

# --- the three jobs: command lines (fresh and resumed), what to check, how to compare --------------------------------
score_cmd() {  # DIR RESUME
  if [ "$2" = 1 ]; then echo train score --resume --out "$1/score.ckpt"
  else echo train score --dataset mnist --ngf 4 --levels 4 --iterations 40 --batch-size 8 --train-images 256 \
    --checkpoint-every 5 --seed 7 --out "$1/score.ckpt"; fi
}
clf_cmd() {
  if [ "$2" = 1 ]; then echo train classifier --resume --out "$1/clf.ckpt"
  else echo train classifier --dataset mnist --arch wrn-10-1 --epochs 2 --batch-size 8 --train-images 192 \
    --validation-images 32 --checkpoint-every 5 --seed 7 --out "$1/clf.ckpt"; fi
}
eval_cmd() { echo eval robust --config "$tmp/models/eval.json" --out "$1/report"; }

# Does the job's output exist (so that the next start resumes)?
score_started() { [ -f "$1/score.ckpt" ]; }
clf_started() { [ -f "$1/clf.ckpt" ]; }
eval_started() { true; }

score_state() { python3 "$check" state ckpt "$1/score.ckpt"; }
clf_state() { python3 "$check" state ckpt "$1/clf.ckpt"; }
eval_state() { python3 "$check" state eval "$1/report"; }

# adp reads what the run wrote, in SNAPSHOT (a copy of the run folder taken right after the kill; a file that does not
# exist yet is not an error).
score_load() { [ ! -f "$1/score.ckpt" ] || adp export --score "$1/score.ckpt" --out "$1/export.safetensors"; }
clf_load() { [ ! -f "$1/clf.ckpt" ] || adp eval clean --classifier "$1/clf.ckpt" --images 8; }
eval_load() { [ ! -f "$1/report/progress.json" ] || [ ! -f "$1/report/config.json" ] || adp eval report "$1/report"; }

score_same() { python3 "$check" same-ckpt "$1/score.ckpt" "$2/score.ckpt"; }
clf_same() { python3 "$check" same-ckpt "$1/clf.ckpt" "$2/clf.ckpt"; }
eval_same() { python3 "$check" same-eval "$1/report" "$2/report"; }

score_total=40; clf_total=40; eval_total=16   # iterations; image results (8 images × 2 attacks)

now() { date +%s.%N; }

# timed LOG ARGS...: runs adp ARGS with output to LOG; prints "SECONDS_TO_FIRST_LINE SECONDS_IN_ALL EXIT_CODE".
timed() {
  local log=$1; shift
  : >"$log"
  local t0 first="" code=0; t0=$(now)
  dotnet "$adp_dll" --threads 1 "$@" >>"$log" 2>&1 &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null && [ ! -s "$log" ]; do sleep 0.02; done
  first=$(now)
  wait "$pid" || code=$?
  python3 -c "import sys; t0, f, e = map(float, sys.argv[1:4]); print(f'{f - t0:.2f} {e - t0:.2f} {sys.argv[4]}')" "$t0" "$first" "$(now)" "$code"
}

# Seeded uniform numbers in [0, 1): one list per job.
uniforms() { python3 -c "import random,sys; r=random.Random(int(sys.argv[1])); print(' '.join(f'{r.random():.4f}' for _ in range(1000)))" "$1"; }

# When an attempt is killed: with probability 1/6 at a uniform moment of its startup (before it prints its first line:
# loading data, writing config.json), else at a uniform moment of what it has left after that line: the fixed part
# (building models, loading the checkpoint, the final writes and the exit: a resume of the finished run after its first
# line) plus the share of the work left (the uninterrupted run after its first line, less the fixed part), with a 20%
# margin so that attempts can end before their kill. Counting from the first line keeps every attempt moving on
# however slow a startup is on a loaded machine.
# Timings on a shared machine vary: SCALE adapts them, shrinking by 0.7 each time an attempt ends before its kill and
# growing by 5% with each kill.
work_delay() {  # U STATE_JSON TOTAL WORK_AFTER_FIRST_LINE FIXED_AFTER_FIRST_LINE SCALE
  python3 -c "
import json, sys
u, st, total, W, F, m = float(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
done = st['iteration'] if 'iteration' in st else sum(map(len, st['cells'].values()))
left = 1.0 if done < 0 else max(0.0, (total - done) / total)
print(f'{u * m * 1.2 * max(0.2, F + left * max(0.0, W - F)):.3f}')" "$@"
}
scale() { python3 -c "import sys; print(f'{float(sys.argv[1]) * float(sys.argv[2]):.4f}')" "$1" "$2"; }

# torture JOB: reference run, then kills until $kills_wanted; prints the job's summary line.
torture() {
  local job=$1 t0=$SECONDS
  local ref="$tmp/$job/ref" run="$tmp/$job/run"
  mkdir -p "$ref"
  local t; t=$(timed "$ref.log" $("${job}_cmd" "$ref" 0))
  [ "${t##* }" = 0 ] || { fail "$job: uninterrupted run failed: $(tail -3 "$ref.log")"; return; }
  local dur first_ref; read -r first_ref dur _ <<<"$t"
  # A resume of the finished run: loads everything, computes nothing, writes the results again.
  cp -a "$ref" "$tmp/$job/noop"
  t=$(timed "$tmp/$job/noop.log" $("${job}_cmd" "$tmp/$job/noop" 1))
  [ "${t##* }" = 0 ] || { fail "$job: resuming the finished run failed: $(tail -3 "$tmp/$job/noop.log")"; return; }
  local startup noop_all; read -r startup noop_all _ <<<"$t"
  "${job}_same" "$tmp/$job/noop" "$ref" >/dev/null || fail "$job: resuming the finished run changed its results"
  local work fixed
  work=$(python3 -c "import sys; print(f'{float(sys.argv[1]) - float(sys.argv[2]):.2f}')" "$dur" "$first_ref")
  fixed=$(python3 -c "import sys; print(f'{float(sys.argv[1]) - float(sys.argv[2]):.2f}')" "$noop_all" "$startup")
  local total_var="${job}_total"
  : >"$run.log"
  read -r -a us <<<"$(uniforms "$((seed * 10 + ${#job}))")"
  local kills=0 survived=0 lost=0 temps=0 finished=0 d=0 campaign=0 identical=1 before after code at=() loader="" phase_startup=0 m=1
  local -A bad_kills=()
  while :; do
    campaign=$((campaign + 1)); rm -rf "$run"; mkdir -p "$run"
    while :; do
      local resume=0; "${job}_started" "$run" && resume=1
      before=$("${job}_state" "$run")
      # dotnet itself in the background (not the adp function: $! would be a subshell, and SIGKILL would orphan dotnet)
      local mark; mark=$(wc -l <"$run.log")
      dotnet "$adp_dll" --threads 1 $("${job}_cmd" "$run" "$resume") >>"$run.log" 2>&1 &
      local pid=$!
      if [ "$kills" -lt "$kills_wanted" ]; then
        local u=${us[$d]} u2=${us[$((d + 1))]}; d=$((d + 2))
        if python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) < 1/6 else 1)" "$u2"; then
          sleep "$(python3 -c "import sys; print(f'{float(sys.argv[1]) * float(sys.argv[2]):.3f}')" "$u" "$startup")"
          phase_startup=$((phase_startup + 1))
        else
          while kill -0 "$pid" 2>/dev/null && [ "$(wc -l <"$run.log")" -le "$mark" ]; do sleep 0.05; done
          sleep "$(work_delay "$u" "$before" "${!total_var}" "$work" "$fixed" "$m")"
        fi
        kill -KILL "$pid" 2>/dev/null || true
      fi
      code=0; wait "$pid" 2>/dev/null || code=$?  # (2>/dev/null: no "Killed" notice from the shell)
      ! kill -0 "$pid" 2>/dev/null || { fail "$job: process $pid still runs after it was killed"; return; }
      if [ "$code" = 137 ]; then
        kills=$((kills + 1)); m=$(scale "$m" 1.05)
        local ok=1 report
        report=$(python3 "$check" check "$run") || { ok=0; fail "$job: after kill $kills: $report"; }
        after=$("${job}_state" "$run") || { ok=0; after='{"iteration": -1, "cells": {}}'; }
        at+=("$(python3 -c "import json,sys; s=json.loads(sys.argv[1]); print(s['iteration'] if 'iteration' in s else sum(map(len, s['cells'].values())))" "$after")")
        local l kind=ckpt; [ "$job" = eval ] && kind=eval
        l=$(python3 "$check" lost "$kind" "$before" "$after")
        [ "$l" = 0 ] || { ok=0; lost=$((lost + l)); fail "$job: kill $kills lost $l committed bytes ($before -> $after)"; }
        [ "$ok" = 0 ] && bad_kills[$kills]=1
        # adp loads a snapshot of the folder while the next attempt runs (one load at a time): $kill.rc says how it went.
        [ -z "$loader" ] || wait "$loader" 2>/dev/null || true
        local snap="$tmp/$job/snap$kills"
        cp -a "$run" "$snap"
        ( rc=0; "${job}_load" "$snap" >"$snap.log" 2>&1 || rc=$?; echo "$rc" >"$snap.rc" ) &
        loader=$!
        continue
      fi
      [ "$code" = 0 ] || { fail "$job: run exited $code (see $run.log): $(tail -3 "$run.log")"; return; }
      m=$(scale "$m" 0.7)
      break
    done
    finished=$((finished + 1))
    local same; same=$("${job}_same" "$run" "$ref") || { fail "$job: finished run $finished differs from the uninterrupted one: $same"; identical=0; }
    local left; left=$(python3 "$check" check "$run" | python3 -c "import json,sys; print(sum(json.load(sys.stdin)['temporaries'].values()))")
    temps=$((temps + left))
    [ "$left" = 0 ] || fail "$job: $left bytes of temporary files left after the run finished"
    [ "$kills" -ge "$kills_wanted" ] && break
  done
  [ -z "$loader" ] || wait "$loader" 2>/dev/null || true
  local k
  for ((k = 1; k <= kills; k++)); do
    if [ "$(cat "$tmp/$job/snap$k.rc" 2>/dev/null)" != 0 ]; then
      bad_kills[$k]=1; fail "$job: after kill $k adp could not read what was written: $(tail -2 "$tmp/$job/snap$k.log")"
    fi
    [ -n "${bad_kills[$k]:-}" ] || survived=$((survived + 1))
  done
  say "$job: $kills kills, $survived survived; $finished resumed runs finished,$([ "$identical" = 1 ] || echo " NOT") all bit-identical" \
      "to the uninterrupted run ($same); bytes lost $lost; temporary bytes left $temps; uninterrupted run ${dur} s," \
      "startup ${startup} s, then ${work} s of work (${fixed} s fixed);" \
      "$((SECONDS - t0)) s in all"
  say "$job: $phase_startup kills aimed at the startup; committed state found after each kill ($([ "$job" = eval ] && echo "image results stored" || echo "checkpoint iteration; -1: none yet")):" \
      "$(printf '%s\n' "${at[@]}" | sort -n | uniq -c | awk '{printf "%s×%s ", $2, $1}')"
}

# --- models for the evaluation: the uninterrupted training runs' checkpoints ------------------------------------------
say "temp folder $tmp; $kills_wanted kills per job, seed $seed"
torture score
torture clf
mkdir -p "$tmp/models"
cp "$tmp/score/ref/score.ckpt" "$tmp/models/score.ckpt" 2>/dev/null || true
cp "$tmp/clf/ref/clf.ckpt" "$tmp/models/clf.ckpt" 2>/dev/null || true
cat >"$tmp/models/eval.json" <<EOF
{"Dataset": "mnist", "Images": 8, "Classifier": "$tmp/models/clf.ckpt", "Score": "$tmp/models/score.ckpt",
 "Runs": 2, "Seeds": [0], "BatchSize": 2, "SanityUnbounded": false, "Purifier": {"Steps": 4},
 "Attacks": [{"Kind": "None", "Target": "Blind"}, {"Kind": "Pgd", "Target": "Blind", "Epsilon": 0.3, "Iterations": 4}]}
EOF
torture eval
say "time $((SECONDS - start_all)) s"
[ "$failed" = 0 ] || exit 1
say "PASS: $((3 * kills_wanted)) kills survived, 0 bytes lost"
