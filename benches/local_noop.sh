#!/usr/bin/env bash
# Benchmark (not a test): the 20-task playbook, no-op, on N local "hosts" (each its own temp root,
# connection local), pbr against ansible-playbook (ansible-core from PyPI in a venv), alternating,
# in one run. Prints medians and the ratio.
#   benches/local_noop.sh [HOSTS=20] [ROUNDS=5]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
hosts=${1:-20}
rounds=${2:-5}
venv="$here/.venv"
if [ ! -x "$venv/bin/ansible-playbook" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q ansible-core
fi
(cd "$top" && cargo build -q --release)
pbr="$top/target/release/pbr"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$here/playbook.yml" "$here/templates" "$work/"
{
  echo "[bench]"
  for i in $(seq 1 "$hosts"); do
    mkdir -p "$work/root$i"
    echo "h$i ansible_connection=local root=$work/root$i ansible_python_interpreter=$venv/bin/python"
  done
} > "$work/inventory.ini"
export ANSIBLE_HOST_KEY_CHECKING=False ANSIBLE_RETRY_FILES_ENABLED=False ANSIBLE_STDOUT_CALLBACK=default \
  ANSIBLE_LOCALHOST_WARNING=False ANSIBLE_NOCOLOR=1 NO_COLOR=1
cd "$work"
# converge with pbr, then both must report changed=0 on the same state
"$pbr" run playbook.yml -i inventory.ini -f "$hosts" > converge.log
"$pbr" run playbook.yml -i inventory.ini -f "$hosts" > pbr.log
grep -q "changed=0" pbr.log || { echo "pbr second run was not a no-op"; tail pbr.log; exit 1; }
"$venv/bin/ansible-playbook" playbook.yml -i inventory.ini -f "$hosts" > ansible.log
if grep -E "changed=[1-9]" ansible.log >/dev/null; then echo "ansible saw changes on pbr's converged state:"; grep -B3 changed: ansible.log | head -40; exit 1; fi
now() { date +%s%N; }
pbr_t=(); ans_t=()
for r in $(seq 1 "$rounds"); do
  t0=$(now); "$pbr" run playbook.yml -i inventory.ini -f "$hosts" > /dev/null; t1=$(now)
  "$venv/bin/ansible-playbook" playbook.yml -i inventory.ini -f "$hosts" > /dev/null; t2=$(now)
  pbr_t+=($(( (t1 - t0) / 1000000 ))); ans_t+=($(( (t2 - t1) / 1000000 )))
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mp=$(median "${pbr_t[@]}"); ma=$(median "${ans_t[@]}")
echo "local no-op, $hosts hosts x 27 task runs, $rounds rounds"
echo "pbr     median ${mp} ms   (runs: ${pbr_t[*]})"
echo "ansible median ${ma} ms   (runs: ${ans_t[*]})"
awk -v a="$ma" -v p="$mp" 'BEGIN { printf "ratio: pbr is %.1fx faster\n", a / (p > 0 ? p : 1) }'
