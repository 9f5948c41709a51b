#!/usr/bin/env bash
# Start one sweepq RQ worker per GPU on this box, each pinned to its GPU, and stop them together.
#
#   workers/start-gpu-workers.sh --url redis://control-box:6379/0
#   workers/start-gpu-workers.sh --gpus 2 --dry-run          # print the commands, start nothing
#
# Run `start-gpu-workers.sh --help` for every option. See workers/README.md.
set -euo pipefail

readonly PROG="${0##*/}"

usage() {
    cat <<EOF
Usage: $PROG [options] [-- extra rq worker options]

Start one \`rq worker\` per GPU, each with CUDA_VISIBLE_DEVICES pinned to its GPU and named
<host>-gpu<i>, and wait. SIGTERM/SIGINT/SIGHUP to this script is passed on to every worker as one
SIGTERM (RQ's warm shutdown: the running trial is stopped and requeued); a second signal, more
than a second later, is passed on again and makes RQ stop at once (cold shutdown).

Which GPUs, first match wins:
  --devices LIST     these devices, comma-separated (indices, or GPU-/MIG- UUIDs)
  --gpus N, -n N     the first N detected GPUs (0..N-1 when nothing can be detected);
                     0 starts one CPU-only worker
  CUDA_VISIBLE_DEVICES, when set and not empty: one worker per listed device
  nvidia-smi --query-gpu=index: one worker per GPU
  otherwise: one CPU-only worker (CUDA_VISIBLE_DEVICES="")

Options:
  --url URL          Redis URL (default: \$SWEEPQ_REDIS_URL); required. A Sentinel URL
                     (redis+sentinel://host:port[,host:port...]/service[/db]) starts the
                     workers with -c sweepq.rq_settings (RQ's own sentinel settings)
  --queue NAME       queue to work on (default: sweepq)
  --trusted-keys F   the sweep owners' public keys, one per line (\$SWEEPQ_TRUSTED_KEYS_FILE;
                     or set SWEEPQ_TRUSTED_KEYS); the workers run only trials they sign
  --allow-functions M  modules whose functions \`program: module:function\` may run inside
                     the workers, comma-separated (\$SWEEPQ_ALLOW_FUNCTIONS; default none)
  --plain            use RQ's plain Worker instead of sweepq's (it cannot read
                     sweepq's JSON jobs: only for queues of other RQ jobs you trust)
  --worker-class C   worker class (default: sweepq.warm.WarmWorker, one work horse reused
                     across trials; sweepq.worker.Worker, a horse per trial, with SWEEPQ_WARM=0)
  --name-prefix P    worker name prefix (default: the short host name)
  --log-dir DIR      one log file per worker here
                     (default: \$SWEEPQ_LOG_DIR or \${XDG_STATE_HOME:-~/.local/state}/sweepq/workers)
  --rq PATH          the rq executable (default: \$SWEEPQ_RQ or rq on PATH)
  --dry-run          print the command of each worker, one per line, and exit
  -h, --help         this help
EOF
}

log() {
    printf '%s %s: %s\n' "$(date '+%H:%M:%S')" "$PROG" "$*" >&2
}

die() {
    log "error: $*"
    exit 2
}

# The URL with any password replaced by REDACTED, for logs and --dry-run output.
mask_url() {
    local url=$1
    local re_userinfo='^([A-Za-z0-9+.-]+://[^:/@]*:)[^@/]*(@.*)$'
    local re_query='^(.*[?&]password=)[^&]*(.*)$'
    if [[ $url =~ $re_userinfo ]]; then
        url="${BASH_REMATCH[1]}REDACTED${BASH_REMATCH[2]}"
    fi
    if [[ $url =~ $re_query ]]; then
        url="${BASH_REMATCH[1]}REDACTED${BASH_REMATCH[2]}"
    fi
    printf '%s' "$url"
}

# Print an argv as one line that a shell would read back as the same argv.
print_argv() {
    local out="" arg
    for arg in "$@"; do
        out+="${out:+ }$(printf '%q' "$arg")"
    done
    printf '%s\n' "$out"
}

need_value() {
    [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value"
}

if ((BASH_VERSINFO[0] < 4 || (BASH_VERSINFO[0] == 4 && BASH_VERSINFO[1] < 4))); then
    echo "$PROG: needs bash 4.4 or newer (this is $BASH_VERSION)" >&2
    exit 2
fi

url="${SWEEPQ_REDIS_URL:-}"
queue="sweepq"
# Warm workers (one work horse reused across trials: a function-mode trial keeps its imports and
# CUDA context) unless SWEEPQ_WARM=0, as for `sweepq plan`'s local workers.
case "${SWEEPQ_WARM:-1}" in
    0 | false | no | off) worker_class="sweepq.worker.Worker" ;;
    *) worker_class="sweepq.warm.WarmWorker" ;;
esac
plain=0
gpus=""
devices_arg=""
name_prefix=""
log_dir="${SWEEPQ_LOG_DIR:-${XDG_STATE_HOME:-${HOME:-.}/.local/state}/sweepq/workers}"
rq_bin="${SWEEPQ_RQ:-rq}"
dry_run=0
trusted_keys="${SWEEPQ_TRUSTED_KEYS_FILE:-}"
allow_functions="${SWEEPQ_ALLOW_FUNCTIONS:-}"
extra=()

while (($#)); do
    case $1 in
        --url) need_value "$@"; url=$2; shift 2 ;;
        --url=*) url=${1#*=}; shift ;;
        --queue) need_value "$@"; queue=$2; shift 2 ;;
        --queue=*) queue=${1#*=}; shift ;;
        --gpus | -n) need_value "$@"; gpus=$2; shift 2 ;;
        --gpus=*) gpus=${1#*=}; shift ;;
        --devices) need_value "$@"; devices_arg=$2; shift 2 ;;
        --devices=*) devices_arg=${1#*=}; shift ;;
        --trusted-keys) need_value "$@"; trusted_keys=$2; shift 2 ;;
        --trusted-keys=*) trusted_keys=${1#*=}; shift ;;
        --allow-functions) need_value "$@"; allow_functions=$2; shift 2 ;;
        --allow-functions=*) allow_functions=${1#*=}; shift ;;
        --plain) plain=1; shift ;;
        --worker-class) need_value "$@"; worker_class=$2; shift 2 ;;
        --worker-class=*) worker_class=${1#*=}; shift ;;
        --name-prefix) need_value "$@"; name_prefix=$2; shift 2 ;;
        --name-prefix=*) name_prefix=${1#*=}; shift ;;
        --log-dir) need_value "$@"; log_dir=$2; shift 2 ;;
        --log-dir=*) log_dir=${1#*=}; shift ;;
        --rq) need_value "$@"; rq_bin=$2; shift 2 ;;
        --rq=*) rq_bin=${1#*=}; shift ;;
        --dry-run) dry_run=1; shift ;;
        -h | --help) usage; exit 0 ;;
        --) shift; extra=("$@"); break ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done

[[ -n $url ]] || die "no Redis URL: pass --url redis://HOST:6379/0 or set SWEEPQ_REDIS_URL"
[[ $queue =~ ^[A-Za-z0-9_.:-]+$ ]] || die "bad queue name: $queue"
if [[ -n $trusted_keys ]]; then
    [[ -r $trusted_keys ]] || die "--trusted-keys: cannot read $trusted_keys"
    trusted_keys=$(cd -- "$(dirname -- "$trusted_keys")" && pwd)/$(basename -- "$trusted_keys")
elif ((!plain)) && [[ -z ${SWEEPQ_TRUSTED_KEYS:-} ]]; then
    log "warning: no --trusted-keys and no SWEEPQ_TRUSTED_KEYS: the workers trust only a key" \
        "under \$SWEEPQ_HOME on this box (see workers/README.md, 'Which sweeps run here')"
fi
[[ -z $allow_functions || $allow_functions =~ ^[A-Za-z0-9_.,]+$ ]] || die "bad --allow-functions: $allow_functions"
if [[ -n $gpus && ! $gpus =~ ^[0-9]+$ ]]; then
    die "--gpus wants a whole number, got: $gpus"
fi
if [[ -z $name_prefix ]]; then
    name_prefix=$(hostname -s 2>/dev/null || hostname 2>/dev/null || echo worker)
fi
# RQ worker names end up in Redis keys and the dashboard: keep them to a safe alphabet.
name_prefix=${name_prefix//[^A-Za-z0-9_.-]/_}

# ---- which devices -------------------------------------------------------------------------

# Split a comma-separated device list into the array `devices`, dropping blanks.
split_devices() {
    local item
    local -a items
    IFS=',' read -r -a items <<<"$1"
    devices=()
    for item in "${items[@]}"; do
        item=${item//[[:space:]]/}
        [[ -z $item ]] && continue
        [[ $item =~ ^[A-Za-z0-9:_.-]+$ ]] || die "bad device id: $item"
        devices+=("$item")
    done
}

# The GPUs this box offers, into `detected` (empty when none can be found) and `found_by`.
detect_gpus() {
    detected=()
    found_by=""
    if [[ -n ${CUDA_VISIBLE_DEVICES:-} ]]; then
        split_devices "$CUDA_VISIBLE_DEVICES"
        # CUDA treats "-1" (or any invalid id) as "no GPU at all".
        if ((${#devices[@]})) && [[ ${devices[0]} != -1 ]]; then
            detected=("${devices[@]}")
            found_by="CUDA_VISIBLE_DEVICES"
        fi
        return 0
    fi
    local out line
    if command -v nvidia-smi >/dev/null 2>&1 &&
        out=$(nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null); then
        while IFS= read -r line; do
            line=${line//[[:space:]]/}
            [[ $line =~ ^[0-9]+$ ]] && detected+=("$line")
        done <<<"$out"
        ((${#detected[@]})) && found_by="nvidia-smi"
    fi
    return 0
}

devices=()
detected=()
found_by=""
cpu_only=0
if [[ -n $devices_arg ]]; then
    split_devices "$devices_arg"
    ((${#devices[@]})) || die "--devices lists no device"
    found_by="--devices"
elif [[ -n $gpus ]]; then
    if ((gpus == 0)); then
        cpu_only=1
    else
        detect_gpus
        if ((${#detected[@]})); then
            ((gpus <= ${#detected[@]})) ||
                die "--gpus $gpus but only ${#detected[@]} GPU(s) found (${found_by}: ${detected[*]})"
            devices=("${detected[@]:0:gpus}")
            found_by="--gpus $gpus of $found_by"
        else
            for ((i = 0; i < gpus; i++)); do devices+=("$i"); done
            found_by="--gpus $gpus"
        fi
    fi
else
    detect_gpus
    if ((${#detected[@]})); then
        devices=("${detected[@]}")
    else
        cpu_only=1
    fi
fi

# ---- the commands --------------------------------------------------------------------------

build_command() {
    # $1: worker name, $2: the CUDA_VISIBLE_DEVICES value; sets the array `cmd`.
    cmd=(env "CUDA_VISIBLE_DEVICES=$2" "CUDA_DEVICE_ORDER=PCI_BUS_ID")
    [[ -n $trusted_keys ]] && cmd+=("SWEEPQ_TRUSTED_KEYS_FILE=$trusted_keys")
    [[ -n $allow_functions ]] && cmd+=("SWEEPQ_ALLOW_FUNCTIONS=$allow_functions")
    cmd+=("$rq_bin" worker)
    if ((!plain)); then
        cmd+=(-w "$worker_class")
    fi
    if [[ $url == *+sentinel://* ]]; then
        # rq's --url cannot take a sentinel URL: RQ's own SENTINEL settings come from
        # sweepq.rq_settings, which reads SWEEPQ_REDIS_URL (exported below, never on argv).
        cmd+=(-c sweepq.rq_settings --name "$1")
    else
        cmd+=(--url "$url" --name "$1")
    fi
    cmd+=("${extra[@]}")
    cmd+=("$queue")
}

if ((cpu_only)); then
    names=("${name_prefix}-cpu0")
    visible=("")
    log "no GPU found: starting one CPU-only worker (CUDA_VISIBLE_DEVICES is empty)"
else
    names=()
    visible=()
    for dev in "${devices[@]}"; do
        names+=("${name_prefix}-gpu${dev//[^A-Za-z0-9_.-]/_}")
        visible+=("$dev")
    done
    log "${#devices[@]} worker(s) for GPU(s) ${devices[*]} (from ${found_by:-detection})"
fi

masked_url=$(mask_url "$url")
export SWEEPQ_REDIS_URL=$url

if ((dry_run)); then
    for i in "${!names[@]}"; do
        build_command "${names[$i]}" "${visible[$i]}"
        cmd_shown=("${cmd[@]}")
        for j in "${!cmd_shown[@]}"; do
            [[ ${cmd_shown[$j]} == "$url" ]] && cmd_shown[j]=$masked_url
        done
        print_argv "${cmd_shown[@]}"
    done
    exit 0
fi

command -v "$rq_bin" >/dev/null 2>&1 ||
    die "cannot find '$rq_bin': install sweepq (pip install sweepq) or pass --rq PATH"
mkdir -p -- "$log_dir"

# ---- start, forward signals, wait ----------------------------------------------------------

# Job control puts each worker in its own process group, so a Ctrl-C in the terminal reaches only
# this script, and every worker gets exactly the one SIGTERM forwarded below (RQ reads a second
# signal as "cold shutdown"). It also keeps SIGINT from being ignored in the workers.
set -m

pids=()
declare -A name_of=() log_of=()
stopping=0

# Called from the traps below; shellcheck cannot see that.
# shellcheck disable=SC2317
forward() {
    local sig=$1 pid
    if ((stopping)); then
        log "SIG$sig again: passing SIGTERM on again (RQ cold shutdown: running trials are killed)"
    else
        log "SIG$sig: passing SIGTERM to ${#pids[@]} worker(s) (warm shutdown; signal again to stop at once)"
    fi
    stopping=1
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
}
trap 'forward TERM' TERM
trap 'forward INT' INT
trap 'forward HUP' HUP

for i in "${!names[@]}"; do
    name=${names[$i]}
    build_command "$name" "${visible[$i]}"
    logfile="$log_dir/$name.log"
    printf '\n==== %s starting %s (CUDA_VISIBLE_DEVICES=%s)\n' "$(date '+%F %T')" "$name" \
        "${visible[$i]}" >>"$logfile"
    "${cmd[@]}" </dev/null >>"$logfile" 2>&1 &
    pid=$!
    pids+=("$pid")
    name_of[$pid]=$name
    log_of[$pid]=$logfile
    log "started $name (pid $pid, CUDA_VISIBLE_DEVICES=${visible[$i]}) -> $logfile"
done
log "queue '$queue' on $masked_url; follow with: tail -F $(printf '%q' "$log_dir")/*.log"

status=0
running=("${pids[@]}")
while ((${#running[@]})); do
    # Returns when a worker ends, or when a signal arrives (its trap has then already run).
    wait -n || true
    still=()
    for pid in "${running[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            still+=("$pid")
            continue
        fi
        rc=0
        wait "$pid" || rc=$?
        if ((rc == 0)); then
            log "${name_of[$pid]} (pid $pid) stopped"
        else
            status=1
            log "${name_of[$pid]} (pid $pid) exited with status $rc; see ${log_of[$pid]}"
        fi
    done
    running=("${still[@]}")
done
log "all workers stopped"
exit "$status"
