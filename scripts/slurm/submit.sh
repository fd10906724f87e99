#!/usr/bin/env bash
# Submits a sharded `adp eval robust` study to Slurm: a job array (eval-array.sbatch, one task per shard) and a
# merge job (merge.sbatch) that runs `adp eval merge` once every array task has succeeded (afterok).
#
# Usage: scripts/slurm/submit.sh -o STUDY [-c CONFIG] [-n N] [options] [-- more adp eval robust arguments]
#
#   -o, --study DIR        study folder on a shared file system (ADP_STUDY; required). Layout:
#                          DIR/shards/shard-K (one report folder per shard), DIR/merged (the merged report),
#                          DIR/logs (job output), DIR/config.json (a copy of CONFIG), DIR/submissions.log
#   -c, --config FILE      evaluation configuration, JSON (ADP_CONFIG)
#   -n, --shards N         number of shards = array tasks (ADP_SHARDS; default 4)
#   -p, --partition NAME   partition of the array tasks (ADP_PARTITION; default: the cluster's default)
#       --merge-partition NAME  partition of the merge job (ADP_MERGE_PARTITION; default: --partition). The merge
#                          needs one core and no GPU: put it on a CPU partition when the shards run on GPUs.
#   -a, --adp "CMD"        command that runs adp, split at spaces (ADP_CMD; default: dotnet <repo>/.build/adp/adp.dll,
#                          which must exist: scripts/setup.sh builds it)
#       --cpus K           cores per array task (ADP_CPUS; default 1); adp runs with --threads K
#       --gpus G           GPUs per array task (ADP_GPUS; default 0); G > 0 adds --gres=gpu:G and --device cuda
#       --mem SIZE         memory per array task, e.g. 4G (ADP_MEM; default: the partition's default)
#       --time LIMIT       time limit per array task, e.g. 12:00:00 (ADP_TIME)
#       --max-running K    at most K array tasks at once (ADP_MAX_RUNNING)
#       --indices LIST     submit only these shards, e.g. 2,5 or 0-3 (default 0-(N-1)): rerun failed tasks, which
#                          resume from their progress.json; a new merge job follows them
#       --sbatch "ARGS"    more sbatch options for both jobs, split at spaces (ADP_SBATCH_ARGS), e.g. --account=x
#   -h, --help
#
# Jobs run in the current directory (relative paths in CONFIG resolve there) with this environment (--export=ALL),
# so set ADP_DATA_DIR before submitting. Prints the two job ids; also appends them to DIR/submissions.log.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "submit.sh: $*" >&2; exit 2; }

study=${ADP_STUDY:-} config=${ADP_CONFIG:-} shards=${ADP_SHARDS:-4} partition=${ADP_PARTITION:-}
merge_partition=${ADP_MERGE_PARTITION:-} adp_cmd=${ADP_CMD:-} cpus=${ADP_CPUS:-1} gpus=${ADP_GPUS:-0}
mem=${ADP_MEM:-} time_limit=${ADP_TIME:-} max_running=${ADP_MAX_RUNNING:-} indices="" extra_sbatch=${ADP_SBATCH_ARGS:-}
while (($#)); do
  case $1 in
    -o | --study) study=${2:?}; shift 2 ;;
    -c | --config) config=${2:?}; shift 2 ;;
    -n | --shards) shards=${2:?}; shift 2 ;;
    -p | --partition) partition=${2:?}; shift 2 ;;
    --merge-partition) merge_partition=${2:?}; shift 2 ;;
    -a | --adp) adp_cmd=${2:?}; shift 2 ;;
    --cpus) cpus=${2:?}; shift 2 ;;
    --gpus) gpus=${2:?}; shift 2 ;;
    --mem) mem=${2:?}; shift 2 ;;
    --time) time_limit=${2:?}; shift 2 ;;
    --max-running) max_running=${2:?}; shift 2 ;;
    --indices) indices=${2:?}; shift 2 ;;
    --sbatch) extra_sbatch=${2:?}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    --) shift; break ;;
    *) die "unknown option '$1' (adp arguments go after --; see --help)" ;;
  esac
done
adp_args=("$@")

[ -n "$study" ] || die "the study folder is required (-o DIR or ADP_STUDY)"
[[ $shards =~ ^[1-9][0-9]*$ ]] || die "--shards: '$shards' is not a positive whole number"
[[ $cpus =~ ^[1-9][0-9]*$ ]] || die "--cpus: '$cpus' is not a positive whole number"
[[ $gpus =~ ^[0-9]+$ ]] || die "--gpus: '$gpus' is not a whole number"
command -v sbatch >/dev/null || die "sbatch not found (run this on a Slurm login node)"
indices=${indices:-0-$((shards - 1))}
[[ $indices =~ ^[0-9,-]+$ ]] || die "--indices: '$indices' is not a list like 2,5 or 0-3"
for part in ${indices//,/ }; do
  for k in ${part//-/ }; do ((k < shards)) || die "--indices: shard $k does not exist (shards 0-$((shards - 1)))"; done
done

if [ -z "$adp_cmd" ]; then
  [ -f "$root/.build/adp/adp.dll" ] || die "$root/.build/adp/adp.dll not found: build it with scripts/setup.sh (or pass --adp CMD)"
  adp_cmd="dotnet $root/.build/adp/adp.dll"
fi

mkdir -p "$study/shards" "$study/logs"
study="$(cd "$study" && pwd)"
if [ -n "$config" ]; then
  [ -f "$config" ] || die "--config $config: file not found"
  # The study keeps the configuration it was submitted with; a resubmission must use the same one.
  if [ -f "$study/config.json" ]; then
    cmp -s "$config" "$study/config.json" || die "$study was submitted with another configuration ($study/config.json); use another study folder"
  else
    cp "$config" "$study/config.json"
  fi
  config="$study/config.json"
fi

export ADP_STUDY="$study" ADP_SHARDS="$shards" ADP_CONFIG="$config" ADP_CMD="$adp_cmd"
export ADP_DEVICE=cpu
((gpus == 0)) || ADP_DEVICE=cuda

common=(--parsable --export=ALL --chdir="$PWD")
read -r -a extra <<<"$extra_sbatch"
common+=("${extra[@]}")
array_opts=(--array="$indices${max_running:+%$max_running}" --cpus-per-task="$cpus"
            --job-name="adp-eval-$(basename "$study")" --output="$study/logs/eval-%A_%a.out")
[ -z "$partition" ] || array_opts+=(--partition="$partition")
((gpus == 0)) || array_opts+=(--gres="gpu:$gpus")
[ -z "$mem" ] || array_opts+=(--mem="$mem")
[ -z "$time_limit" ] || array_opts+=(--time="$time_limit")

array_id=$(sbatch "${common[@]}" "${array_opts[@]}" "$here/eval-array.sbatch" "${adp_args[@]}")
array_id=${array_id%%;*}  # --parsable prints "id" or "id;cluster"

merge_partition=${merge_partition:-$partition}
merge_opts=(--dependency="afterok:$array_id" --kill-on-invalid-dep=yes --cpus-per-task=1
            --job-name="adp-merge-$(basename "$study")" --output="$study/logs/merge-%j.out")
[ -z "$merge_partition" ] || merge_opts+=(--partition="$merge_partition")
merge_id=$(sbatch "${common[@]}" "${merge_opts[@]}" "$here/merge.sbatch")
merge_id=${merge_id%%;*}

echo "$(date -Is) array $array_id shards $indices of $shards; merge $merge_id; adp: $adp_cmd; config: ${config:-none}; arguments: ${adp_args[*]:-none}" \
  >>"$study/submissions.log"
echo "array job $array_id: shards $indices of $shards → $study/shards/shard-K (logs: $study/logs)"
echo "merge job $merge_id: after every task of $array_id succeeds → $study/merged"
