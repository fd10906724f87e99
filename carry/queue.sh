#!/bin/bash
# Runs the carried evaluations of carry/queue.txt in order, with one-thread workers, resumable across sessions.
#
#   carry/queue.sh start [WORKERS]                 start WORKERS (default 2) background workers
#   carry/queue.sh restart [WORKERS]               replace the workers (after editing this script or queue.txt's
#                                                  format); the running jobs go on and are adopted
#   carry/queue.sh stop                            stop the workers and their jobs now (a job's unfinished batch is
#                                                  lost), then copy every unfinished folder into carry/ (stash)
#   carry/queue.sh drain [MINUTES]                 the same, but each job is stopped only once it finishes its current
#                                                  batch (progress.json or tune.json rewritten), or MINUTES (default
#                                                  40) have passed
#   carry/queue.sh upgrade NEWBIN                  run a new build: each running job restarts on it right after its
#                                                  next stored batch (losing seconds, not the batch); later jobs use it
#   carry/queue.sh status                          one line per job: done, claimed (running, or stopped this
#                                                  session), carried or to do; and the images its log counts
#
# A line of queue.txt is NAME|CONFIG|EXTRA ARGS: the job `adp eval robust --config CONFIG EXTRA --out $ADP_EVALS/NAME'`
# (NAME' is NAME with / as -), whose state is carried as carry/NAME; with CONFIG empty, `adp EXTRA --out ...` (e.g. an
# `eval tune` search). A job is done when carry/NAME holds results.json or tune.csv (`adp eval robust` and `eval tune`
# write them only when every cell or point is computed). Workers take the first job that is neither done nor
# claimed, so the file's order is the priority. Environment: ADP_BIN (a copy of the Release build, never the build
# folder itself: jobs must not run DLLs a rebuild replaces; default /work/runs/bin), ADP_EVALS (default /work/evals),
# ADP_DATA_DIR (default /work/shared/data), QUEUE (default carry/queue.txt).
set -u
repo=$(cd "$(dirname "$0")/.." && pwd)
evals=${ADP_EVALS:-/work/evals}
bin=${ADP_BIN:-/work/runs/bin}
queue=${QUEUE:-$repo/carry/queue.txt}
claims=$evals/.claims
mine="queue.sh worker $evals( |\$)"   # this queue's workers (pgrep -f pattern), not another ADP_EVALS's
export ADP_DATA_DIR=${ADP_DATA_DIR:-/work/shared/data}

entries() { grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$queue"; }
folder() { echo "$evals/${1//\//-}"; }
finished() { [ -e "$1/results.json" ] || [ -e "$1/tune.csv" ]; }   # a folder `eval robust` / `eval tune` completed
is_done() { finished "$repo/carry/$1"; }
log() { echo "$(date -u '+%F %T') $*" >> "$evals/queue.log"; }
# True when PID is still an adp job (not a reused PID of something else).
is_job() { [ -n "${1:-}" ] && grep -qa "adp.dll" "/proc/$1/cmdline" 2>/dev/null; }

# Copies an unfinished job's folder into carry/ (replacing the older copy) so the next session resumes it.
stash_one() {
    local name=$1 dir; dir=$(folder "$name")
    [ -n "$name" ] || return 1   # never carry/ itself
    [ -d "$dir" ] || return 0
    rm -rf "$repo/carry/$name.tmp" && mkdir -p "$(dirname "$repo/carry/$name")" &&
        cp -r "$dir" "$repo/carry/$name.tmp" && rm -rf "$repo/carry/$name" && mv "$repo/carry/$name.tmp" "$repo/carry/$name"
}

# Bookkeeping when a job ends: a finished folder is copied into carry/ as done, an unfinished one is stashed there.
conclude() {
    local name=$1 status=$2 dir; dir=$(folder "$name")
    [ -n "$name" ] || return 1
    rm -f "$claims/${name//\//-}/pid"
    if { [ "$status" = 0 ] || [ "$status" = "?" ]; } && finished "$dir"; then stash_one "$name" && log "done $name"
    else log "stopped $name (exit $status; $dir.log)"; stash_one "$name"; fi
    # upgrade stopped it to restart it on the new build: release the claim so that a worker takes it up again at once.
    if [ -e "$claims/${name//\//-}/requeue" ]; then rm -rf "${claims:?}/${name//\//-}"; log "requeued $name"; fi
}

# A worker optionally adopts a running job (claim KEY) of an earlier worker first, then takes jobs from the queue.
worker() {
    cd "$repo" || exit 1
    if [ -n "${1:-}" ]; then
        local key=$1 pid; pid=$(cat "$claims/$key/pid")
        while is_job "$pid"; do sleep 20; done
        conclude "$(cat "$claims/$key/name")" "?"   # not our child: its exit status is unknown, the folder tells
    fi
    local failures=0
    while [ ! -e "$claims/STOP" ]; do
        local took=
        while IFS='|' read -r name config args; do
            is_done "$name" && continue
            mkdir "$claims/${name//\//-}" 2>/dev/null || continue
            echo "$name" > "$claims/${name//\//-}/name"
            took=1
            local dir; dir=$(folder "$name")
            # carry/ is the authority: every job's end stashes its folder there, so a working copy left from an
            # earlier session is never newer (and may be older, where carry/ came from another machine).
            if [ -d "carry/$name" ]; then rm -rf "$dir" && cp -r "carry/$name" "$dir"; fi
            log "start $name"
            local -a argv; read -r -a argv <<< "$args"   # EXTRA ARGS split into words, never globbed
            [ -s "$claims/BIN" ] && bin=$(cat "$claims/BIN")   # set by upgrade
            if [ -n "$config" ]; then
                dotnet "$bin/adp.dll" --threads 1 eval robust --config "$config" "${argv[@]}" --out "$dir" > "$dir.log" 2>&1 &
            else
                dotnet "$bin/adp.dll" --threads 1 "${argv[@]}" --out "$dir" > "$dir.log" 2>&1 &
            fi
            local pid=$! started=$SECONDS
            echo "$pid" > "$claims/${name//\//-}/pid"
            [ -e "$claims/STOP" ] && kill -TERM "$pid"   # stop ran while this job was being set up
            wait "$pid"
            local status=$?
            conclude "$name" "$status"
            # A job that fails at once (bad binary, data, config) three times running: stop rather than claim the queue.
            if [ "$status" != 0 ] && [ $((SECONDS - started)) -lt 60 ]; then failures=$((failures + 1)); else failures=0; fi
            [ "$failures" -ge 3 ] && { log "worker stops: three jobs in a row failed within a minute"; exit 1; }
            break
        done < <(entries)
        [ -z "$took" ] && break
    done
}

case "${1:-}" in
    start|restart)
        [ -e "$bin/adp.dll" ] || { echo "queue.sh: $bin/adp.dll not found (copy the Release build there, or set ADP_BIN)" >&2; exit 2; }
        # Without it MNIST and Fashion-MNIST would silently fall back to the embedded first 1,000 test images.
        [ -d "$ADP_DATA_DIR" ] || { echo "queue.sh: ADP_DATA_DIR $ADP_DATA_DIR is not a folder (set it to the data directory)" >&2; exit 2; }
        # restart: new workers (e.g. after editing this script) adopt the running jobs, which go on undisturbed.
        [ "$1" = restart ] && { pkill -f "$mine"; sleep 1; }
        pgrep -f "$mine" > /dev/null && { echo "queue.sh: workers are already running (queue.sh restart or stop)" >&2; exit 2; }
        n=${2:-2}; mkdir -p "$claims" && rm -f "$claims/STOP" && echo "$bin" > "$claims/BIN"
        adopted=()
        for c in "$claims"/*/; do
            [ -d "$c" ] || continue
            if [ -e "$c/pid" ] && is_job "$(cat "$c/pid")"; then adopted+=("$(basename "$c")"); else rm -rf "$c"; fi
        done
        for key in "${adopted[@]}"; do nohup "$0" worker "$evals" "$key" > /dev/null 2>&1 & sleep 1; done
        for _ in $(seq $((n - ${#adopted[@]}))); do nohup "$0" worker "$evals" > /dev/null 2>&1 & sleep 2; done
        echo "$n worker(s), ${#adopted[@]} adopting a running job; log: $evals/queue.log" ;;
    worker) shift 2; worker "$@" ;;   # worker EVALS [KEY]: EVALS names the queue's workers in the process list
    stop|drain)
        # drain: a job's batch in progress is worth up to ~40 min (CIFAR-10 BPDA), so wait for its progress.json to be
        # rewritten (the batch is stored) before TERM, up to the deadline; stop: TERM at once.
        minutes=${2:-40}
        [[ $minutes =~ ^[0-9]+$ ]] || { echo "queue.sh: drain MINUTES: expected a whole number of minutes, got '$minutes'" >&2; exit 2; }
        deadline=$SECONDS
        [ "$1" = drain ] && deadline=$((SECONDS + 60 * minutes))
        mkdir -p "$claims" && touch "$claims/STOP"
        # Only this queue's jobs: other adp processes on the machine are not ours to stop. The workers stash each job's
        # folder when it ends and then see STOP and exit; wait for that.
        [ "$1" = drain ] && echo "waiting for each job to store its current batch (at most $minutes min)..." \
            || echo "stopping the jobs (their unfinished batches are lost)..."
        declare -A termed=() baseline=()
        while pgrep -f "$mine" > /dev/null; do
            for f in "$claims"/*/pid; do
                p=$(cat "$f" 2>/dev/null) || continue   # gone: the job ended and its worker concluded it
                [ -n "$p" ] && [ -z "${termed[$p]:-}" ] && is_job "$p" || continue
                name=$(cat "$(dirname "$f")/name"); d=$(folder "$name")
                # A stored batch rewrites progress.json (eval robust) or tune.json (eval tune).
                m=$(stat -c %y "$d/progress.json" "$d/tune.json" 2>/dev/null | tr '\n' ' ')
                [ -z "${baseline[$p]+set}" ] && baseline[$p]=$m
                # Every image computed (log "robust N/M images" with N = M): the job is writing its report and ends by itself.
                got=$(grep -ao 'robust [0-9]*/[0-9]* images' "$d.log" 2>/dev/null | tail -1 | cut -d' ' -f2)
                [ -n "$got" ] && [ "${got%/*}" = "${got#*/}" ] && continue
                if [ "$SECONDS" -ge "$deadline" ] || [ "$m" != "${baseline[$p]}" ]; then
                    # CONT too: a job paused with kill -STOP (e.g. for a test run) would otherwise never see the TERM.
                    kill -TERM "$p"; kill -CONT "$p"; termed[$p]=1; log "$1: TERM $name"
                fi
            done
            sleep 5
        done
        # Jobs still in the queue only: a finished job whose line was deleted has moved to results/ and is not carried again.
        for c in "$claims"/*/name; do
            [ -e "$c" ] && entries | cut -d'|' -f1 | grep -qxF "$(cat "$c")" && stash_one "$(cat "$c")"
        done
        echo "stopped; unfinished folders are in carry/ (commit them)" ;;
    upgrade)
        # upgrade NEWBIN: later jobs run NEWBIN, and each running job is stopped right after its next stored batch (progress.json
        # rewritten) and taken up again at once on NEWBIN; it loses only the seconds since that batch. The workers must be
        # this script's version (restart them first after editing it).
        new=${2:-}
        [ -e "$new/adp.dll" ] || { echo "queue.sh: upgrade NEWBIN: $new/adp.dll not found" >&2; exit 2; }
        [ "$(readlink -f "$new")" != "$(readlink -f "$(cat "$claims/BIN" 2>/dev/null)")" ] || { echo "queue.sh: the jobs already run $new" >&2; exit 2; }
        echo "$new" > "$claims/BIN.tmp" && mv "$claims/BIN.tmp" "$claims/BIN"
        declare -A base=()
        for f in "$claims"/*/pid; do [ -e "$f" ] && base[$f]=$(stat -c %y "$(folder "$(cat "$(dirname "$f")/name")")/progress.json" 2>/dev/null); done
        echo "waiting for ${#base[@]} running job(s) to store a batch..."
        while [ ${#base[@]} -gt 0 ]; do
            for f in "${!base[@]}"; do
                p=$(cat "$f" 2>/dev/null) && is_job "$p" || { unset "base[$f]"; continue; }   # ended by itself
                name=$(cat "$(dirname "$f")/name")
                [ "$(stat -c %y "$(folder "$name")/progress.json" 2>/dev/null)" != "${base[$f]}" ] || continue
                touch "$(dirname "$f")/requeue" && kill -TERM "$p" && log "upgrade: TERM $name (to restart on $new)"
                unset "base[$f]"
            done
            sleep 3
        done
        echo "done: every job runs $new or will at its next start" ;;
    status)
        entries | while IFS='|' read -r name config args; do
            if is_done "$name"; then s=done
            elif [ -e "$claims/${name//\//-}" ]; then s=claimed
            elif [ -d "$repo/carry/$name" ]; then s=carried
            else s="to do"; fi
            # How far a job's last run on this machine got (its log's latest "robust N/M images" line; a resumed run counts
            # only the images it computes itself).
            got=$(grep -ao 'robust [0-9]*/[0-9]* images' "$(folder "$name").log" 2>/dev/null | tail -1 | cut -d' ' -f2)
            printf '%-8s %s%s\n' "$s" "$name" "${got:+  (latest run here: ${got%/*} of the ${got#*/} images it resumed with)}"
        done ;;
    *) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
