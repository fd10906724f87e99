#!/bin/bash
# Runs the carried evaluations of carry/queue.txt in order, with one-thread workers, resumable across sessions.
#
#   carry/queue.sh start [WORKERS] [AFTER_PID...]  start WORKERS (default 2) background workers; each waits for the
#                                                  AFTER_PIDs (jobs started by hand) to end before it takes a job
#   carry/queue.sh stop                            stop the workers and their jobs (at the end of the current batch),
#                                                  then copy every unfinished folder into carry/ (stash)
#   carry/queue.sh status                          one line per job: done, running, carried or to do
#
# A line of queue.txt is NAME|CONFIG|EXTRA ARGS: the job `adp eval robust --config CONFIG EXTRA --out $ADP_EVALS/NAME'`
# (NAME' is NAME with / as -), whose state is carried as carry/NAME. A job is done when carry/NAME/results.json exists
# (`adp eval robust` writes it only when every cell is computed). Workers take the first job that is neither done nor
# claimed, so the file's order is the priority. Environment: ADP_BIN (a copy of the Release build, never the build
# folder itself: jobs must not run DLLs a rebuild replaces; default /work/runs/bin), ADP_EVALS (default /work/evals),
# ADP_DATA_DIR (default /work/shared/data), QUEUE (default carry/queue.txt).
set -u
repo=$(cd "$(dirname "$0")/.." && pwd)
evals=${ADP_EVALS:-/work/evals}
bin=${ADP_BIN:-/work/runs/bin}
queue=${QUEUE:-$repo/carry/queue.txt}
claims=$evals/.claims
export ADP_DATA_DIR=${ADP_DATA_DIR:-/work/shared/data}

entries() { grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$queue"; }
folder() { echo "$evals/${1//\//-}"; }
is_done() { [ -e "$repo/carry/$1/results.json" ]; }
log() { echo "$(date -u '+%F %T') $*" >> "$evals/queue.log"; }

# Copies an unfinished job's folder into carry/ (replacing the older copy) so the next session resumes it.
stash_one() {
    local name=$1 dir; dir=$(folder "$name")
    [ -d "$dir" ] || return 0
    rm -rf "$repo/carry/$name.tmp" && mkdir -p "$(dirname "$repo/carry/$name")" &&
        cp -r "$dir" "$repo/carry/$name.tmp" && rm -rf "$repo/carry/$name" && mv "$repo/carry/$name.tmp" "$repo/carry/$name"
}

worker() {
    cd "$repo" || exit 1
    for pid in "$@"; do while kill -0 "$pid" 2>/dev/null && [ ! -e "$claims/STOP" ]; do sleep 20; done; done
    while [ ! -e "$claims/STOP" ]; do
        local took=
        while IFS='|' read -r name config args; do
            is_done "$name" && continue
            mkdir "$claims/${name//\//-}" 2>/dev/null || continue
            echo "$name" > "$claims/${name//\//-}/name"
            took=1
            local dir; dir=$(folder "$name")
            [ ! -d "$dir" ] && [ -d "carry/$name" ] && cp -r "carry/$name" "$dir"
            log "start $name"
            # shellcheck disable=SC2086  # EXTRA is a list of arguments
            dotnet "$bin/adp.dll" --threads 1 eval robust --config "$config" $args --out "$dir" > "$dir.log" 2>&1 &
            echo $! > "$claims/${name//\//-}/pid"
            if wait $! && [ -e "$dir/results.json" ]; then
                stash_one "$name" && log "done $name"
            else
                log "stopped $name (exit $?; $dir.log)"; stash_one "$name"
            fi
            break
        done < <(entries)
        [ -z "$took" ] && break
    done
}

case "${1:-}" in
    start)
        [ -e "$bin/adp.dll" ] || { echo "queue.sh: $bin/adp.dll not found (copy the Release build there, or set ADP_BIN)" >&2; exit 2; }
        pgrep -f "queue.sh worker" > /dev/null && { echo "queue.sh: workers are already running (queue.sh stop first)" >&2; exit 2; }
        n=${2:-2}; shift; shift || true
        mkdir -p "$evals" && rm -rf "$claims" && mkdir -p "$claims"
        for _ in $(seq "$n"); do nohup "$0" worker "$@" > /dev/null 2>&1 & sleep 2; done
        echo "started $n worker(s); log: $evals/queue.log" ;;
    worker) shift; worker "$@" ;;
    stop)
        mkdir -p "$claims" && touch "$claims/STOP"
        # Only this queue's jobs: other adp processes on the machine are not ours to stop.
        pids=$(cat "$claims"/*/pid 2>/dev/null)
        for p in $pids; do kill -TERM "$p" 2>/dev/null; done
        echo "waiting for the jobs to finish their current batch..."
        for p in $pids; do while kill -0 "$p" 2>/dev/null; do sleep 10; done; done
        for _ in $(seq 30); do pgrep -f "queue.sh worker" > /dev/null || break; sleep 2; done
        pkill -f "queue.sh worker" || true
        for c in "$claims"/*/name; do [ -e "$c" ] && stash_one "$(cat "$c")"; done
        echo "stopped; unfinished folders are in carry/ (commit them)" ;;
    status)
        entries | while IFS='|' read -r name config args; do
            if is_done "$name"; then s=done
            elif [ -e "$claims/${name//\//-}" ]; then s=claimed
            elif [ -d "$repo/carry/$name" ]; then s=carried
            else s="to do"; fi
            printf '%-8s %s\n' "$s" "$name"
        done ;;
    *) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
