#!/usr/bin/env bash
# End-to-end test of the Slurm scripts on a private one-node Slurm cluster on this machine.
#
#  1. installs Debian's slurm-wlm and munge (and python3) when missing (needs root; apt);
#  2. starts munged with its own key and socket, then slurmctld and slurmd from a generated slurm.conf (this host's
#     name, CPUs and memory; cgroup-free plugins proctrack/linuxproc and task/none; no accounting; free ports);
#     everything they write (key, socket, state, spool, logs, pid files) lives in one temp folder;
#  3. submits a 4-shard study of a tiny evaluation (8 Fashion-MNIST images, S=2, T=2, preprocessor-blind PGD with
#     2 iterations and the natural row) with submit.sh, with shard 2 failing once (after computing): the merge job
#     must then be cancelled (afterok), and `submit.sh --indices 2` must rerun shard 2 into the same folder, resume
#     from its progress.json without recomputing, and merge;
#  4. runs the same evaluation unsharded (with another batch size) and compares per image: the same cells, the same
#     image indices, the same per-image outcomes (every rule and resubmission, runs correct, curves);
#  5. checks that `adp eval merge` refuses a shard folder of another configuration (--sigma 0.3) with exit code 2.
#
# Stops the daemons it started on every exit (trap) and deletes the temp folder (kept on failure or with
# ADP_SLURM_TEST_KEEP=1). Outside it, nothing is left but the installed packages: Debian's munge package creates
# /etc/munge/munge.key when it is installed (its postinst); this test uses its own key in the temp folder and never
# touches that one, nor /etc/slurm, nor any system munged or Slurm. Needs the tool built (scripts/setup.sh).
# Prints "PASS: ..." at the end; exits non-zero on any failure.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
adp_dll="$root/.build/adp/adp.dll"
start=$SECONDS

say() { echo "slurm-test: $*"; }
failure=""
fail() { failure="$*"; echo "slurm-test: FAIL: $*" >&2; exit 1; }

[ -f "$adp_dll" ] || fail "$adp_dll not found; build it first (scripts/setup.sh)"
command -v dotnet >/dev/null || fail "dotnet not found"

# --- 1. packages -------------------------------------------------------------------------------------------------
missing=()
command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null || missing+=(slurm-wlm)
command -v munged >/dev/null && command -v mungekey >/dev/null || missing+=(munge)
command -v python3 >/dev/null || missing+=(python3)
if ((${#missing[@]})); then
  [ "$(id -u)" = 0 ] || fail "needs ${missing[*]} (apt-get install ${missing[*]}) and root to install them"
  say "installing ${missing[*]} (Debian packages)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq </dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
fi
[ "$(id -u)" = 0 ] || fail "run as root: the private cluster's daemons run as root (SlurmUser=root)"

# --- 2. the private cluster --------------------------------------------------------------------------------------
tmp="$(mktemp -d "${TMPDIR:-/tmp}/adp-slurm-test.XXXXXX")"
chmod 755 "$tmp"  # munged requires every folder above its socket to be searchable by all
mkdir -p "$tmp"/{munge,state,spool,log,run}
pids=()  # daemons started here, stopped in this order's reverse
ok=0
cleanup() {
  local rc=$?
  set +e
  if [ -f "$tmp/slurm.conf" ] && [ -n "${slurmctld_pid:-}" ] && kill -0 "$slurmctld_pid" 2>/dev/null; then
    local left
    left=$(squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ')
    if [ -n "${left// /}" ]; then
      say "cancelling jobs still in the private cluster: $left"
      # shellcheck disable=SC2086
      scancel $left 2>/dev/null
      for _ in $(seq 30); do [ -z "$(squeue -h -o %A 2>/dev/null)" ] && break; sleep 1; done
    fi
  fi
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null; done
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    for _ in $(seq 50); do kill -0 "${pids[i]}" 2>/dev/null || break; sleep 0.2; done
    kill -0 "${pids[i]}" 2>/dev/null && kill -9 "${pids[i]}" 2>/dev/null
    wait "${pids[i]}" 2>/dev/null
  done
  if ((ok)) && [ -z "${ADP_SLURM_TEST_KEEP:-}" ]; then
    rm -rf "$tmp"
  else
    if ((!ok)); then
      for f in "$tmp"/log/* "$tmp"/study/logs/*; do
        [ -f "$f" ] && { echo "---- ${f#"$tmp"/} (last lines)"; tail -n 6 "$f"; }
      done
    fi
    say "kept $tmp"
  fi
  ((ok)) || echo "slurm-test: FAIL: ${failure:-exit code $rc}" >&2
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap 'failure="line $LINENO: $BASH_COMMAND (exit $?)"' ERR

# munge: own key, socket, pid, log and seed files
mungekey --create --keyfile="$tmp/munge/munge.key" >/dev/null 2>&1 \
  || { dd if=/dev/urandom of="$tmp/munge/munge.key" bs=1 count=1024 status=none; }
chmod 400 "$tmp/munge/munge.key"
munge_socket="$tmp/munge/munge.socket"
munged --foreground --key-file="$tmp/munge/munge.key" --socket="$munge_socket" --pid-file="$tmp/munge/munged.pid" \
  --log-file="$tmp/log/munged.log" --seed-file="$tmp/munge/munged.seed" >"$tmp/log/munged.out" 2>&1 &
pids+=($!)
for _ in $(seq 50); do [ -S "$munge_socket" ] && break; sleep 0.2; done
munge --socket="$munge_socket" -n </dev/null | unmunge --socket="$munge_socket" >/dev/null \
  || fail "munged did not start (see $tmp/log/munged.*)"

# two free TCP ports for slurmctld and slurmd
read -r ctld_port slurmd_port < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')
host="$(hostname -s)"
# this machine as slurmd sees it: "NodeName=host CPUs=… Boards=… SocketsPerBoard=… CoresPerSocket=… ThreadsPerCore=… RealMemory=…"
node_line="$(slurmd -C | head -n 1)"
[[ $node_line == NodeName=* ]] || fail "slurmd -C printed no node line: $node_line"
cpus="$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$node_line")"
: >"$tmp/plugstack.conf"
cat >"$tmp/slurm.conf" <<CONF
# Private one-node test cluster (scripts/slurm/test-local-cluster.sh); everything under $tmp.
ClusterName=adptest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$munge_socket
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/run/slurmctld.pid
SlurmdPidFile=$tmp/run/slurmd.pid
SlurmctldLogFile=$tmp/log/slurmctld.log
SlurmdLogFile=$tmp/log/slurmd.log
PlugStackConfig=$tmp/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MinJobAge=600
MailProg=/bin/true
SlurmctldTimeout=30
SlurmdTimeout=30
$node_line NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$tmp/slurm.conf"
slurmctld -D -f "$SLURM_CONF" >"$tmp/log/slurmctld.out" 2>&1 &
slurmctld_pid=$!
pids+=("$slurmctld_pid")
slurmd -D -f "$SLURM_CONF" >"$tmp/log/slurmd.out" 2>&1 &
pids+=($!)
state=""
for _ in $(seq 60); do
  state="$(sinfo -h -n "$host" -o %T 2>/dev/null || true)"
  [ "$state" = idle ] && break
  sleep 1
done
[ "$state" = idle ] || fail "the node did not come up (sinfo: '${state:-no answer}')"
say "private cluster up: $host, $cpus CPU(s), slurmctld :$ctld_port, slurmd :$slurmd_port ($((SECONDS - start)) s)"

# --- helpers -------------------------------------------------------------------------------------------------------
job_field() {  # job_field JOBID FIELD → the field of the job (first array task for an array job)
  scontrol -o show job "$1" 2>/dev/null | head -n 1 | tr ' ' '\n' | sed -n "s/^$2=//p"
}
wait_gone() {  # wait_gone JOBID... : until none is pending or running (timeout 300 s)
  local deadline=$((SECONDS + 300))
  while [ -n "$(squeue -h -j "$(IFS=,; echo "$*")" -o %A 2>/dev/null)" ]; do
    ((SECONDS < deadline)) || fail "jobs $* still queued or running after 300 s"
    sleep 1
  done
}
job_ids() { sed -n "s/^$1 job \([0-9]*\):.*/\1/p"; }
adp() { dotnet "$adp_dll" --threads 1 "$@"; }

# --- 3. the sharded study ------------------------------------------------------------------------------------------
# The evaluation: batch size 4 here, 1 in the shards (per-image randomness: results must not depend on it).
cat >"$tmp/eval.json" <<JSON
{
  "Classifier": "$root/models/fashion-mnist-smallcnn.ckpt",
  "Score": "$root/models/fashion-mnist-score.ckpt",
  "Images": 8, "Runs": 2, "Seeds": [0], "Resubmissions": 1, "BatchSize": 4,
  "Purifier": { "Sigma": 0.25, "Steps": 2 },
  "Attacks": [
    { "Name": "natural (ADP)", "Kind": "None", "Target": "Blind" },
    { "Name": "preprocessor-blind PGD-2", "Kind": "Pgd", "Target": "Blind", "Epsilon": 0.1, "Iterations": 2 }
  ]
}
JSON
# adp for the first submission: shard 2 fails once, after its evaluation has finished (a task lost after the fact).
cat >"$tmp/flaky-adp" <<SH
#!/usr/bin/env bash
dotnet "$adp_dll" "\$@" || exit
if [ "\$SLURM_ARRAY_TASK_ID" = 2 ] && [ ! -e "$tmp/flaky-failed" ]; then
  touch "$tmp/flaky-failed"; echo "flaky-adp: shard 2 fails on purpose" >&2; exit 3
fi
SH
chmod +x "$tmp/flaky-adp"

study="$tmp/study"
cd "$tmp"
out="$("$here/submit.sh" -o "$study" -c "$tmp/eval.json" -n 4 -a "$tmp/flaky-adp" -- --batch-size 1)"
echo "$out"
array1="$(job_ids array <<<"$out")" merge1="$(job_ids merge <<<"$out")"
[ -n "$array1" ] && [ -n "$merge1" ] || fail "submit.sh printed no job ids"
wait_gone "$array1" "$merge1"
for k in 0 1 2 3; do
  s="$(job_field "${array1}_$k" JobState)"
  want=COMPLETED; ((k != 2)) || want=FAILED
  [ "$s" = "$want" ] || fail "array task ${array1}_$k: $s, expected $want"
done
s="$(job_field "$merge1" JobState)"
[ "$s" = CANCELLED ] || fail "merge job $merge1 after a failed shard: $s, expected CANCELLED (afterok, kill-on-invalid-dep)"
[ ! -e "$study/merged" ] || fail "a merged report exists although shard 2 failed"
say "first submission: shards 0,1,3 completed, shard 2 failed, merge cancelled ($((SECONDS - start)) s)"

cp "$study/shards/shard-2/progress.json" "$tmp/shard-2-before.json"
out="$("$here/submit.sh" -o "$study" -c "$tmp/eval.json" -n 4 --indices 2 -- --batch-size 1)"
echo "$out"
array2="$(job_ids array <<<"$out")" merge2="$(job_ids merge <<<"$out")"
wait_gone "$array2" "$merge2"
s="$(job_field "${array2}_2" JobState)"
[ "$s" = COMPLETED ] || fail "resubmitted shard 2 (${array2}_2): $s"
s="$(job_field "$merge2" JobState)"
[ "$s" = COMPLETED ] || fail "merge job $merge2: $s (log: $study/logs/merge-$merge2.out)"
[ -f "$study/merged/progress.json" ] && [ -f "$study/merged/report.md" ] || fail "no merged report in $study/merged"
cmp -s "$tmp/shard-2-before.json" "$study/shards/shard-2/progress.json" \
  || fail "the rerun of shard 2 changed its progress.json (it should have resumed, computing nothing)"
say "resubmitted shard 2 resumed without recomputing; merge completed ($((SECONDS - start)) s)"

# --- 4. unsharded, compared per image ------------------------------------------------------------------------------
adp eval robust --config "$tmp/eval.json" --out "$tmp/unsharded" >"$tmp/log/unsharded.out" 2>&1 \
  || { tail -n 5 "$tmp/log/unsharded.out"; fail "the unsharded evaluation failed"; }
python3 - "$tmp/unsharded/progress.json" "$study/merged/progress.json" <<'PY' || fail "merged and unsharded results differ"
import json, sys

def per_image(path):
    """(cell, image index) -> every per-image outcome; cells are 'attack id|seed'."""
    out = {}
    for key, c in json.load(open(path))["Cells"].items():
        for pos, i in enumerate(c["Indices"]):
            out[key, i] = {
                "correct": {rule: [r[pos] for r in res] for rule, res in c["Correct"].items()},
                "runs correct": c["RunsCorrect"][pos] if c["RunsCorrect"] else None,
                "steps curve": {t: v[pos] for t, v in c["StepsCurve"].items()},
                "iterations curve": {k: v[pos] for k, v in c["IterationsCurve"].items()},
            }
    return out

a, b = (per_image(p) for p in sys.argv[1:3])
cells = {k for k, _ in a}
if len(cells) < 3 or len(a) != 8 * len(cells):
    sys.exit(f"unexpected unsharded progress: {len(cells)} cells, {len(a)} (cell, image) entries")
if a.keys() != b.keys():
    sys.exit(f"different (cell, image) sets: only unsharded {sorted(a.keys() - b.keys())}, only merged {sorted(b.keys() - a.keys())}")
diff = [k for k in a if a[k] != b[k]]
for k in diff[:5]:
    print(f"  {k}: unsharded {a[k]} merged {b[k]}", file=sys.stderr)
if diff:
    sys.exit(f"{len(diff)} of {len(a)} per-image outcomes differ")
print(f"slurm-test: merged = unsharded: {len(cells)} cells x 8 images, every per-image outcome equal")
PY

# --- 5. merge refuses a shard of another configuration -------------------------------------------------------------
adp eval robust --config "$tmp/eval.json" --sigma 0.3 --shard 1/4 --out "$tmp/other-sigma" >"$tmp/log/other-sigma.out" 2>&1 \
  || fail "the --sigma 0.3 shard failed"
set +e
msg="$(adp eval merge "$study/shards/shard-0" "$tmp/other-sigma" "$study/shards/shard-2" "$study/shards/shard-3" \
  --out "$tmp/refused" 2>&1)"
rc=$?
set -e
[ "$rc" = 2 ] || fail "eval merge with a --sigma 0.3 shard: exit code $rc, expected 2 ($msg)"
[ "$(wc -l <<<"$msg")" = 1 ] || fail "eval merge's refusal is not one line: $msg"
grep -q "σ=0.3" <<<"$msg" || fail "eval merge's refusal does not name the difference: $msg"
[ ! -e "$tmp/refused/progress.json" ] || fail "eval merge wrote a report although it refused"
say "eval merge refuses another configuration (exit 2): $msg"

ok=1
echo "PASS: Slurm job array (4 shards, one failed and resumed) + afterok merge = unsharded evaluation per image; merge refuses other configurations ($((SECONDS - start)) s)"
