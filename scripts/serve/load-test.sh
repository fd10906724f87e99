#!/usr/bin/env bash
# Load test of `adp serve` on loopback (issue 14), against the offline purification throughput in the same run:
#   1. the offline figure: `adp-bench purify` (DefendedClassifier.Classify on batches of test images, no HTTP);
#   2. `adp serve` with the same models, runs S, steps T and threads, on 127.0.0.1;
#   3. `adp-bench load`: images/s and p50/p99 latency at 1, 8 and 32 concurrent clients (bounded request counts);
#   4. SIGTERM to the service (it drains), and a summary line: service images/s at the most clients / offline.
# Settings (environment): CLASSIFIER, SCORE (default: the shipped Fashion-MNIST models), RUNS (10), STEPS (10),
# THREADS (1), PORT (5077), CLIENTS (1,8,32), REQUESTS (8,32,96), OFFLINE_BATCH (100), OFFLINE_BATCHES (1).
# Everything is bounded: each step runs under `timeout`; the service is stopped on exit.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
classifier="${CLASSIFIER:-models/fashion-mnist-smallcnn.ckpt}"
score="${SCORE:-models/fashion-mnist-score.ckpt}"
runs="${RUNS:-10}"; steps="${STEPS:-10}"; threads="${THREADS:-1}"; port="${PORT:-5077}"
clients="${CLIENTS:-1,8,32}"; requests="${REQUESTS:-8,32,96}"
offline_batch="${OFFLINE_BATCH:-100}"; offline_batches="${OFFLINE_BATCHES:-1}"
export OMP_NUM_THREADS="$threads"

echo "# load-test: $(date -u +%FT%TZ), $(getconf _NPROCESSORS_ONLN) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# busiest processes:"; ps -eo pcpu,etime,args --sort=-pcpu | head -4 | cut -c1-160 | sed 's/^/#   /'
"$root/scripts/setup.sh"
dotnet build "$root/bench/Adp.Bench/Adp.Bench.csproj" -c Release -nologo -v quiet -clp:ErrorsOnly
out="$(mktemp)"; log="$(mktemp)"; pid=""
trap '[ -n "$pid" ] && kill -TERM $pid 2>/dev/null; rm -f "$out" "$log"' EXIT
# Runs adp-bench with its output shown and kept in $out.
bench() { timeout 1200 dotnet "$root/bench/Adp.Bench/bin/Release/net10.0/adp-bench.dll" "$@" >"$out" 2>&1; local rc=$?; cat "$out"; return $rc; }

echo "# 1. offline: adp-bench purify score=$score classifier=$classifier runs=$runs steps=$steps batch=$offline_batch batches=$offline_batches"
bench purify "score=$score" "classifier=$classifier" "runs=$runs" "steps=$steps" "batch=$offline_batch" "batches=$offline_batches"
offline_line="$(grep '^purification' "$out")"
offline="$(sed -E 's/.*: ([0-9.]+) defended images\/s.*/\1/' <<<"$offline_line")"

echo "# 2. adp --threads $threads serve --classifier $classifier --score $score --preset paper --runs $runs --steps $steps --urls http://127.0.0.1:$port"
timeout 1800 "$root/.build/adp/adp" --threads "$threads" serve --classifier "$classifier" --score "$score" --preset paper \
    --runs "$runs" --steps "$steps" --urls "http://127.0.0.1:$port" >"$log" 2>&1 &
pid=$!
for _ in $(seq 1 240); do
    curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    kill -0 $pid 2>/dev/null || { cat "$log" >&2; echo "load-test: adp serve exited" >&2; exit 1; }
    sleep 0.5
done
curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null || { cat "$log" >&2; echo "load-test: adp serve did not become healthy" >&2; exit 1; }
grep '^adp serve' "$log" | sed 's/^/#   /'

echo "# 3. adp-bench load url=http://127.0.0.1:$port clients=$clients requests=$requests"
status=0
bench load "url=http://127.0.0.1:$port" "clients=$clients" "requests=$requests" || status=$?
load_out="$(cat "$out")"
curl -fsS "http://127.0.0.1:$port/metrics" | grep -E '^adp_(batch_size_images_(sum|count)|images_total|rejected_total)' | sed 's/^/#   /'

echo "# 4. SIGTERM"
kill -TERM $pid; wait $pid || true; pid=""
tail -1 "$log" | sed 's/^/#   /'
last="$(grep '^serve-load' <<<"$load_out" | tail -1)"
served="$(sed -E 's/.*images\/s=([0-9.]+).*/\1/' <<<"$last")"
echo "load-test: offline $offline images/s; service at ${clients##*,} clients $served images/s = $(awk -v s="$served" -v o="$offline" 'BEGIN { printf "%.0f%%", 100 * s / o }') of offline; errors: $(grep -o 'errors=[0-9]*' <<<"$load_out" | cut -d= -f2 | awk '{ s += $1 } END { print s + 0 }')"
exit $status
