#!/usr/bin/env bash
# Benchmark (not a test): the 20-task playbook (27 task runs per host), no-op, over SSH to N
# throwaway OpenSSH servers on loopback (testkit's sshd-farm; login user pbrtest, shell /bin/sh),
# pbr against ansible-playbook (ansible-core from PyPI in a venv), same playbook, same inventory.
#   benches/ssh_noop.sh [--converge] [N...]   (default: 10 100)
# With --converge (benches/ssh_converge.sh), every timed run converges a fresh fleet instead: the
# hosts' directories are emptied before each run, so every task changes something.
# Environment:
#   ROUNDS=3                 timed pbr runs per N (alternating with Ansible's)
#   ANSIBLE_ROUNDS=3         timed Ansible runs per N below 100 hosts
#   ANSIBLE_ROUNDS_BIG=1     timed Ansible runs per N of 100 hosts or more (each takes minutes)
# For each N: start the farm, converge once with pbr, check that pbr and Ansible then both report
# changed=0 (and nothing failed or unreachable) on every host, alternate timed no-op runs, print
# medians and the ratio, pbr's peak RSS (/usr/bin/time -v), and where the CPU went: the
# controller's (user+sys of the tool and its children) and the hosts' (the farm's cpuacct cgroup:
# every sshd session and what it runs; all N "hosts" share this machine's cores).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
converge=
if [ "${1:-}" = --converge ]; then
  converge=1
  shift
fi
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10 100)
rounds=${ROUNDS:-3}
ans_rounds_small=${ANSIBLE_ROUNDS:-3}
ans_rounds_big=${ANSIBLE_ROUNDS_BIG:-1}

[ "$(id -u)" = 0 ] || { echo "ssh_noop.sh: needs root (the farm creates a user and runs sshd)"; exit 1; }
[ -x /usr/sbin/sshd ] || { echo "ssh_noop.sh: needs openssh-server"; exit 1; }
[ -x /usr/bin/time ] || { echo "ssh_noop.sh: needs GNU time (apt-get install -y time)"; exit 1; }
venv="$here/.venv"
if [ ! -x "$venv/bin/ansible-playbook" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q ansible-core
fi
(cd "$top" && cargo build -q --release && cargo build -q --release -p pbr-testkit --bin sshd-farm)
pbr="$top/target/release/pbr"
farm="$top/target/release/sshd-farm"

work=$(mktemp -d)
farm_pid=
stop_farm() {
  if [ -n "$farm_pid" ]; then
    exec 3>&- || true
    kill -TERM "$farm_pid" 2>/dev/null || true
    wait "$farm_pid" 2>/dev/null || true
    farm_pid=
  fi
}
trap 'stop_farm; rm -rf "$work"' EXIT
cp -r "$here/playbook.yml" "$here/templates" "$work/"
cd "$work"

# Ansible: pipelining, OpenSSH multiplexing; host keys from the farm's known_hosts (inventory).
export ANSIBLE_PIPELINING=True ANSIBLE_SSH_ARGS='-o ControlMaster=auto -o ControlPersist=60s' \
  ANSIBLE_RETRY_FILES_ENABLED=False ANSIBLE_STDOUT_CALLBACK=default ANSIBLE_NOCOLOR=1 NO_COLOR=1 \
  ANSIBLE_CONTROL_PATH_DIR="$work/cp"
unset ANSIBLE_HOST_KEY_CHECKING PBR_HOST_KEY_CHECKING

now() { date +%s%N; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# every one of N hosts has a recap line with changed=0 unreachable=0 failed=0
all_noop() {
  local log=$1 n=$2 good
  good=$(grep -cE '^h[0-9]+ +: ok=[0-9]+ +changed=0 +unreachable=0 +failed=0 ' "$log" || true)
  [ "$good" = "$n" ]
}

# every one of N hosts has a recap line with changed>0 unreachable=0 failed=0
all_converged() {
  local log=$1 n=$2 good
  good=$(grep -E '^h[0-9]+ +: ok=[0-9]+ +changed=[1-9][0-9]* +unreachable=0 +failed=0 ' "$log" | wc -l)
  [ "$good" = "$n" ]
}
# the run's check: a no-op, or (--converge) a converge of every host
clean_run() {
  if [ -n "$converge" ]; then all_converged "$@"; else all_noop "$@"; fi
}
# --converge: empty every host's directory (root= in the inventory) before a timed run
fresh() {
  [ -n "$converge" ] || return 0
  grep -o 'root=[^ ]*' "$inv" | cut -d= -f2- | while read -r r; do
    find "$r" -mindepth 1 -delete
  done
}

# CPU time of the farm's cgroup (every sshd and what it runs), in ns; 0 when not available
hosts_ns() {
  if [ -s "$work/farm/cpu_usage" ]; then cat "$(cat "$work/farm/cpu_usage")"; else echo 0; fi
}
# timed LOG CMD...: run CMD under /usr/bin/time -v; sets t_wall, t_cpu (controller user+sys),
# t_hosts (farm CPU) in ms and t_rss (peak RSS, KB)
timed() {
  local log=$1 t0 t1 h0 h1
  shift
  h0=$(hosts_ns)
  t0=$(now)
  /usr/bin/time -v -o time.log "$@" > "$log" 2>&1 || true
  t1=$(now)
  h1=$(hosts_ns)
  t_wall=$(((t1 - t0) / 1000000))
  t_hosts=$(((h1 - h0) / 1000000))
  t_cpu=$(awk -F': ' '/User time|System time/ {s += $2} END {printf "%d", s * 1000}' time.log)
  t_rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' time.log)
}

summary=()
for n in "${sizes[@]}"; do
  if [ "$n" -ge 100 ]; then ans_rounds=$ans_rounds_big; else ans_rounds=$ans_rounds_small; fi
  echo "== $n hosts: starting the sshd farm"
  rm -rf "$work/farm" "$work/cp"
  mkfifo "$work/farm.in"
  "$farm" "$n" "$work/farm" < "$work/farm.in" > "$work/farm.out" 2>&1 &
  farm_pid=$!
  exec 3> "$work/farm.in"
  rm -f "$work/farm.in"
  until grep -q READY "$work/farm.out" 2>/dev/null; do
    kill -0 "$farm_pid" 2>/dev/null || { echo "sshd-farm failed:"; cat "$work/farm.out"; exit 1; }
    sleep 0.2
  done
  inv="$work/farm/inventory.ini"
  run_pbr=("$pbr" run playbook.yml -i "$inv" -f "$n" --no-retry-file)
  run_ans=("$venv/bin/ansible-playbook" playbook.yml -i "$inv" -f "$n")

  if [ -n "$converge" ]; then
    echo "== $n hosts: both tools converge a fresh fleet (first runs, not counted)"
    fresh
    "${run_pbr[@]}" > pbr.log 2>&1 || true
    all_converged pbr.log "$n" || { echo "pbr did not converge every host:"; tail -40 pbr.log; exit 1; }
    fresh
    timed ansible.log "${run_ans[@]}"
    first_ans=$t_wall
    all_converged ansible.log "$n" || { echo "ansible-playbook did not converge every host:"; tail -40 ansible.log; exit 1; }
  else
    echo "== $n hosts: converging with pbr, then checking both tools report no changes"
    "${run_pbr[@]}" > converge.log 2>&1 || { echo "pbr converge failed:"; tail -30 converge.log; exit 1; }
    "${run_pbr[@]}" > pbr.log 2>&1 || true
    all_noop pbr.log "$n" || { echo "pbr's second run was not a no-op on every host:"; tail -40 pbr.log; exit 1; }
    timed ansible.log "${run_ans[@]}"
    first_ans=$t_wall
    all_noop ansible.log "$n" || {
      echo "ansible-playbook saw changes or failures on pbr's converged state:"
      grep -E 'changed:|failed:|fatal:|UNREACHABLE' ansible.log | head -20
      grep -E '^h[0-9]+ +: ' ansible.log | grep -vE 'changed=0 +unreachable=0 +failed=0 ' | head -10
      exit 1
    }
  fi

  pbr_t=() pbr_cpu=() pbr_hosts=() pbr_rss=()
  ans_t=() ans_cpu=() ans_hosts=()
  for r in $(seq 1 "$rounds"); do
    fresh
    timed pbr.log "${run_pbr[@]}"
    clean_run pbr.log "$n" || { echo "pbr run $r was not clean:"; tail -40 pbr.log; exit 1; }
    pbr_t+=("$t_wall") pbr_cpu+=("$t_cpu") pbr_hosts+=("$t_hosts") pbr_rss+=("$t_rss")
    if [ "$r" -le "$ans_rounds" ]; then
      fresh
      timed ansible.log "${run_ans[@]}"
      clean_run ansible.log "$n" || { echo "ansible run $r was not clean:"; tail -40 ansible.log; exit 1; }
      ans_t+=("$t_wall") ans_cpu+=("$t_cpu") ans_hosts+=("$t_hosts")
    fi
  done
  rss_kb=$(printf '%s\n' "${pbr_rss[@]}" | sort -n | tail -1)
  stop_farm

  mp=$(median "${pbr_t[@]}")
  ma=$(median "${ans_t[@]}")
  ratio=$(awk -v a="$ma" -v p="$mp" 'BEGIN { printf "%.1f", a / (p > 0 ? p : 1) }')
  rss_mb=$(awk -v k="$rss_kb" 'BEGIN { printf "%.1f", k / 1024 }')
  echo "ssh $([ -n "$converge" ] && echo converge || echo no-op), $n hosts x 27 task runs"
  echo "pbr     median ${mp} ms   (runs: ${pbr_t[*]})"
  echo "ansible median ${ma} ms   (runs: ${ans_t[*]}; first (check) run, not counted: ${first_ans} ms)"
  echo "ratio: pbr is ${ratio}x faster"
  echo "controller CPU (user+sys) median: pbr $(median "${pbr_cpu[@]}") ms, ansible $(median "${ans_cpu[@]}") ms"
  echo "hosts' CPU (all sshd sessions and what they run) median: pbr $(median "${pbr_hosts[@]}") ms, ansible $(median "${ans_hosts[@]}") ms"
  echo "pbr peak RSS: ${rss_mb} MB"
  summary+=("$n hosts: pbr ${mp} ms, ansible ${ma} ms (${#ans_t[@]} runs), ${ratio}x; controller CPU pbr $(median "${pbr_cpu[@]}") ms / ansible $(median "${ans_cpu[@]}") ms; hosts CPU pbr $(median "${pbr_hosts[@]}") ms / ansible $(median "${ans_hosts[@]}") ms; pbr peak RSS ${rss_mb} MB")
done
echo "== summary"
printf '%s\n' "${summary[@]}"
