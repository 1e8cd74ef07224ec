#!/usr/bin/env bash
# A real single-node SLURM cluster on localhost, for CI and for trying profiles/slurm.
#
#   scripts/slurm-local.sh up       install (if missing), configure, start, wait until idle
#   scripts/slurm-local.sh status   what runs, what sinfo says; exit 0 only if jobs can run
#   scripts/slurm-local.sh down     stop the daemons that `up` started (by PID), nothing else
#
# Debian 12 packages (slurm-wlm 22.05, munge), run as root, no systemd needed. `up` is
# idempotent: a second call finds the daemons alive, re-checks the node and runs the smoke
# job again (~2 s). Bring-up from scratch: ~8 s with the package install, ~4 s without.
#
# Design choices (the user-facing side: README, "Running on a SLURM cluster"):
# * Job status: squeue polling, no accounting database. The SLURM executor plugin polls
#   either `sacct` (needs slurmdbd + MariaDB: two more daemons, ~10 s more bring-up, one
#   more thing that can fail in CI) or `squeue --states=all` (needs the controller to keep
#   finished jobs for longer than the plugin's polling interval, which grows to 180 s).
#   We pick squeue with MinJobAge=3600 and let profiles/slurm-ci set
#   `slurm-status-command: squeue`. Trap: with accounting off, `sacct` still exists
#   (slurm-client ships it) but cannot see jobs, and a plugin left on its sacct default
#   never sees a job finish and hangs: always use the CI profile against this cluster.
#   Finished jobs stay visible to squeue/scontrol (with their GPU request) for that hour,
#   which the tests use; jobcomp/filetxt also logs every finished job (id, name, state,
#   times) to /var/log/slurm/jobcomp.log for good.
# * GPUs: a `gpu` GRES so that `--gpus=1` requests are scheduled and the job gets
#   CUDA_VISIBLE_DEVICES. A count-only GRES (`Gres=gpu:2` without File=) is dropped by
#   slurmd on a machine without NVML (it finds no GPU), the node reports fewer GPUs than
#   configured and drains; so gres.conf lists device files: the real /dev/nvidia<N> when the
#   machine has them, otherwise character devices we create with mknod (major 195, the
#   NVIDIA major). Nothing ever opens the fake ones; torch then finds no CUDA and the
#   code falls back to CPU with a log line.
# * CPUs, sockets, cores and memory come from `slurmd -C`, so the node never registers
#   with less than configured (which would make it INVAL/drained).
set -euo pipefail

STATE_DIR=${MODELRECOVERY_SLURM_STATE:-/run/modelrecovery-slurm}   # PIDs of what we started
FAKE_GPU_DIR=${MODELRECOVERY_SLURM_FAKE_GPU_DIR:-/var/lib/modelrecovery-slurm/fakegpu}
FAKE_GPUS=${MODELRECOVERY_SLURM_FAKE_GPUS:-2}   # enough for one GPU job per core here
WAIT_S=${MODELRECOVERY_SLURM_WAIT:-60}          # how long `up` waits for an idle node
NODE=localhost
PARTITION=local
CONF_DIR=/etc/slurm
LOG_DIR=/var/log/slurm
MARKER="# Written by modelrecovery scripts/slurm-local.sh; safe to delete."
START_S=$(date +%s)

say() { echo "[slurm-local +$(( $(date +%s) - START_S ))s] $*"; }
die() { echo "slurm-local: ERROR: $*" >&2; exit 1; }

# waitfor SECONDS CMD...: poll CMD every 0.5 s until it succeeds.
waitfor() {
  local tries=$(( $1 * 2 )); shift
  local i
  for (( i = 0; i < tries; i++ )); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  return 1
}

# pid_of NAME: the PID we recorded for daemon NAME if that process still runs it.
pid_of() {
  local file="$STATE_DIR/$1.pid" pid
  [ -s "$file" ] || return 1
  pid=$(cat "$file")
  [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = "$1" ] || return 1
  echo "$pid"
}

# start NAME CMD...: run a daemon in the foreground, detached, and record its PID.
start() {
  local name=$1; shift
  setsid "$@" </dev/null >>"$LOG_DIR/$name.stdout" 2>&1 &
  local pid=$!
  sleep 0.3
  if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != "$name" ]; then
    tail -n 20 "$LOG_DIR/$name.stdout" "$LOG_DIR/$name.log" 2>/dev/null >&2 || true
    die "$name did not start (see $LOG_DIR/$name.log)"
  fi
  echo "$pid" > "$STATE_DIR/$name.pid"
  say "started $name (pid $pid)"
}

node_state() { sinfo -h -N -n "$NODE" -o %T 2>/dev/null | head -n 1; }
node_usable() { [[ "$(node_state)" =~ ^(idle|mixed|allocated|completing)$ ]]; }

diagnose() {
  echo "--- sinfo" >&2
  sinfo -N -o '%N %T %E' >&2 2>&1 || true
  local f
  for f in "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log"; do
    [ -f "$f" ] && { echo "--- tail $f" >&2; tail -n 15 "$f" >&2; }
  done
  return 0
}

install_packages() {
  local missing=0 cmd
  for cmd in slurmctld slurmd sbatch sinfo squeue munged mungekey; do
    command -v "$cmd" >/dev/null 2>&1 || missing=1
  done
  [ "$missing" = 0 ] && return 0
  say "installing slurm-wlm and munge (apt-get)"
  command -v apt-get >/dev/null || die "slurm/munge missing and no apt-get to install them"
  apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    slurm-wlm munge >/dev/null || die "apt-get install slurm-wlm munge failed"
}

write_config() {
  # Node hardware exactly as slurmd detects it.
  local hw cpus boards sockets cores threads mem
  hw=$(slurmd -C | head -n 1) || die "slurmd -C failed"
  field() { sed -n "s/.*\b$1=\([0-9]*\).*/\1/p" <<<"$hw"; }
  cpus=$(field CPUs); boards=$(field Boards); sockets=$(field SocketsPerBoard)
  cores=$(field CoresPerSocket); threads=$(field ThreadsPerCore); mem=$(field RealMemory)
  [ -n "$cpus" ] && [ -n "$mem" ] || die "cannot parse 'slurmd -C': $hw"

  # GPU devices: real ones if present, else fake character devices (see header).
  local gpu_files gpu_count
  mapfile -t real < <(ls /dev/nvidia[0-9]* 2>/dev/null || true)
  if [ "${#real[@]}" -gt 0 ]; then
    gpu_count=${#real[@]}
    gpu_files="/dev/nvidia[0-$(( gpu_count - 1 ))]"
  else
    [[ "$FAKE_GPUS" =~ ^[1-9][0-9]*$ ]] || die "MODELRECOVERY_SLURM_FAKE_GPUS must be >= 1"
    gpu_count=$FAKE_GPUS
    mkdir -p "$FAKE_GPU_DIR"
    local i
    for (( i = 0; i < gpu_count; i++ )); do
      [ -c "$FAKE_GPU_DIR/nvidia$i" ] || mknod "$FAKE_GPU_DIR/nvidia$i" c 195 "$i" \
        || die "mknod $FAKE_GPU_DIR/nvidia$i failed (needs CAP_MKNOD)"
    done
    gpu_files="$FAKE_GPU_DIR/nvidia[0-$(( gpu_count - 1 ))]"
  fi

  mkdir -p "$CONF_DIR" "$STATE_DIR"
  local new="$STATE_DIR/slurm.conf.new" newgres="$STATE_DIR/gres.conf.new"
  cat > "$newgres" <<CONF
$MARKER
AutoDetect=off
NodeName=$NODE Name=gpu File=$gpu_files
CONF
  cat > "$new" <<CONF
$MARKER
ClusterName=modelrecovery-local
SlurmctldHost=$NODE
SlurmUser=slurm
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
# No cgroups in a container: track processes by /proc, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SwitchType=switch/none
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without a default, a job with no memory request takes the whole node.
DefMemPerCPU=1000
ReturnToService=2
# squeue-based status polling: keep finished jobs visible for an hour (the plugin's
# polling interval grows to at most 180 s; it falls back to sacct below 3 x its first
# interval).
MinJobAge=3600
KillWait=5
InactiveLimit=0
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
# No accounting database (see the header); every finished job is still recorded here.
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG_DIR/jobcomp.log
GresTypes=gpu
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus Boards=$boards SocketsPerBoard=$sockets CoresPerSocket=$cores ThreadsPerCore=$threads RealMemory=$mem Gres=gpu:$gpu_count State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
CONF
  CONFIG_CHANGED=0
  if ! cmp -s "$new" "$CONF_DIR/slurm.conf" || ! cmp -s "$newgres" "$CONF_DIR/gres.conf"; then
    CONFIG_CHANGED=1
    mv "$new" "$CONF_DIR/slurm.conf"
    mv "$newgres" "$CONF_DIR/gres.conf"
    say "wrote $CONF_DIR/slurm.conf ($cpus CPUs, ${mem} MB, $gpu_count gpu: $gpu_files)"
  else
    rm -f "$new" "$newgres"
  fi
}

start_munge() {
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    pid_of munged >/dev/null || say "munged already running (not ours; left alone)"
    return 0
  fi
  [ -s /etc/munge/munge.key ] || { mungekey --create --keyfile=/etc/munge/munge.key \
    && chown munge:munge /etc/munge/munge.key && chmod 600 /etc/munge/munge.key; } \
    || die "cannot create /etc/munge/munge.key"
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  chmod 755 /run/munge
  # setpriv execs munged as the munge user in this PID (no forking wrapper).
  start munged setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged -F
  waitfor 10 sh -c 'munge -n | unmunge' || die "munged runs but munge/unmunge fails"
}

start_slurm() {
  mkdir -p /var/spool/slurmctld /var/spool/slurmd /run/slurm "$LOG_DIR"
  chown slurm:slurm /var/spool/slurmctld /run/slurm "$LOG_DIR"
  # Restart our own daemons when the configuration changed (GRES and node changes need it).
  if [ "$CONFIG_CHANGED" = 1 ]; then
    stop_daemon slurmd; stop_daemon slurmctld
  fi
  if ! pid_of slurmctld >/dev/null; then
    if scontrol ping 2>/dev/null | grep -q UP; then
      die "a slurmctld not started by this script answers on this machine; stop it first"
    fi
    start slurmctld slurmctld -D
  fi
  waitfor 30 sh -c 'scontrol ping | grep -q UP' || { diagnose; die "slurmctld does not answer"; }
  if ! pid_of slurmd >/dev/null; then
    # -N: the node is 'localhost' whatever the hostname is.
    start slurmd slurmd -D -N "$NODE"
  fi
}

wait_for_node() {
  local deadline=$(( $(date +%s) + WAIT_S )) state last="" polls=0
  while :; do
    state=$(node_state)
    case "$state" in
      idle|mixed|allocated|completing) return 0 ;;
      # A drained or down node stays so across restarts: resume it once slurmd answers
      # (a trailing * means it does not answer yet). Again every 5 s if it does not take.
      drained|draining|drain|down)
        if [ "$state" != "$last" ] || (( polls % 10 == 0 )); then
          say "node $NODE is $state ($(sinfo -h -N -n "$NODE" -o %E)); resuming it"
          scontrol update nodename="$NODE" state=resume 2>/dev/null || true
        fi ;;
    esac
    last=$state
    polls=$(( polls + 1 ))
    if [ "$(date +%s)" -ge "$deadline" ]; then
      diagnose
      die "node $NODE is '${state:-unknown}', not idle, after ${WAIT_S}s"
    fi
    sleep 0.5
  done
}

smoke_test() {
  # One real job through the scheduler, asking for a GPU as the profile's recover jobs do.
  local out="$STATE_DIR/smoke.out" jid
  rm -f "$out"
  jid=$(sbatch --parsable --job-name=slurm-local-smoke --gpus=1 --time=1 --mem=100 \
        -o "$out" --wrap 'echo "gpu=${CUDA_VISIBLE_DEVICES:-none}"') \
    || { diagnose; die "cannot submit the smoke job (sbatch --gpus=1)"; }
  if ! waitfor 60 sh -c "scontrol show job $jid | grep -q 'JobState=COMPLETED'"; then
    scontrol show job "$jid" >&2 || true
    diagnose
    die "smoke job $jid did not complete within 60 s"
  fi
  grep -q '^gpu=[0-9]' "$out" \
    || die "smoke job $jid ran without a GPU assignment: $(cat "$out" 2>/dev/null)"
  say "smoke job $jid ran with $(cat "$out")"
}

stop_daemon() {
  local name=$1 pid i
  if pid=$(pid_of "$name"); then
    kill "$pid" 2>/dev/null || true
    for (( i = 0; i < 40; i++ )); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
    say "stopped $name (pid $pid)"
  fi
  rm -f "$STATE_DIR/$name.pid"
}

cmd_up() {
  [ "$(id -u)" = 0 ] || die "must run as root (it installs packages and starts daemons)"
  if [ -f "$CONF_DIR/slurm.conf" ] && ! grep -qxF "$MARKER" "$CONF_DIR/slurm.conf"; then
    die "$CONF_DIR/slurm.conf exists and was not written by this script; refusing to touch it"
  fi
  install_packages
  mkdir -p "$STATE_DIR" "$LOG_DIR"
  write_config
  start_munge
  start_slurm
  wait_for_node
  smoke_test
  sinfo
  say "cluster ready: partition '$PARTITION', node $NODE (status polling: squeue)"
}

cmd_down() {
  [ "$(id -u)" = 0 ] || die "must run as root"
  stop_daemon slurmd
  stop_daemon slurmctld
  stop_daemon munged
  say "down (only daemons started by 'up' were stopped)"
}

cmd_status() {
  local name pid rc=0
  for name in munged slurmctld slurmd; do
    if pid=$(pid_of "$name"); then echo "$name: running (pid $pid, started by up)"
    else echo "$name: not started by this script"; fi
  done
  if command -v sinfo >/dev/null && sinfo -h >/dev/null 2>&1; then
    sinfo -N -o '%N %P %T %C %m %G %E'
    node_usable || rc=1
  else
    echo "sinfo: no controller answers"; rc=1
  fi
  return "$rc"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
