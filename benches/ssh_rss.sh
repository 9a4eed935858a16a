#!/usr/bin/env bash
# Benchmark (not a test): pbr's peak RSS with many SSH hosts at once. sshd-farm starts at most 240
# OpenSSH servers on loopback, so N inventory hosts (default 1000) are spread over them (host x7
# uses server 7 mod 240, with its own directory): pbr keeps one connection per inventory host,
# N connections in all, with -f N. It converges the fleet once, then times a converge of a fresh
# fleet and a no-op run under /usr/bin/time -v.
#   benches/ssh_rss.sh [N]
# Ansible is not run here: at 1000 hosts one ansible-playbook run takes about an hour on this
# machine (ssh_noop.sh and ssh_converge.sh compare the two tools at 10 and 100 hosts).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
n=${1:-1000}
[ "$(id -u)" = 0 ] || { echo "ssh_rss.sh: needs root (the farm creates a user and runs sshd)"; exit 1; }
[ -x /usr/bin/time ] || { echo "ssh_rss.sh: needs GNU time (apt-get install -y time)"; exit 1; }
(cd "$top" && cargo build -q --release && cargo build -q --release -p pbr-testkit --bin sshd-farm)
pbr="$top/target/release/pbr"
farm="$top/target/release/sshd-farm"
servers=$((n < 240 ? n : 240))

work=$(mktemp -d)
farm_pid=
trap 'exec 3>&- || true; [ -z "$farm_pid" ] || { kill -TERM "$farm_pid" 2>/dev/null; wait "$farm_pid" 2>/dev/null; }; rm -rf "$work"' EXIT
cp -r "$here/playbook.yml" "$here/templates" "$work/"
cd "$work"
mkfifo farm.in
"$farm" "$servers" "$work/farm" < farm.in > farm.out 2>&1 &
farm_pid=$!
exec 3> farm.in
until grep -q READY farm.out 2>/dev/null; do
  kill -0 "$farm_pid" 2>/dev/null || { echo "sshd-farm failed:"; cat farm.out; exit 1; }
  sleep 0.2
done

# N inventory hosts over the farm's servers, each with its own directory
base=$(grep -m1 -o 'root=[^ ]*' farm/inventory.ini | cut -d= -f2 | xargs dirname)
grep '^h[0-9]' farm/inventory.ini > servers.txt
{
  echo "[bench]"
  for i in $(seq 1 "$n"); do
    line=$(sed -n "$(((i - 1) % servers + 1))p" servers.txt)
    mkdir -p "$base/x$i"
    echo "$line" | sed "s/^h[0-9]* /x$i /; s#root=[^ ]*#root=$base/x$i#"
  done
  echo
  sed -n '/^\[all:vars\]/,$p' farm/inventory.ini
} > inventory.ini
chown pbrtest "$base"/x*

run() {
  /usr/bin/time -v -o time.log "$pbr" run playbook.yml -i inventory.ini -f "$n" --no-retry-file > run.log 2>&1 || true
  rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2 / 1024}' time.log)
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' time.log)
}
run
converged=$(grep -cE '^x[0-9]+ +: ok=[0-9]+ +changed=[1-9][0-9]* +unreachable=0 +failed=0 ' run.log || true)
[ "$converged" = "$n" ] || { echo "the first run did not converge every host:"; tail -20 run.log; exit 1; }
for d in "$base"/x*; do find "$d" -mindepth 1 -delete; done
run
converged=$(grep -cE '^x[0-9]+ +: ok=[0-9]+ +changed=[1-9][0-9]* +unreachable=0 +failed=0 ' run.log || true)
[ "$converged" = "$n" ] || { echo "the converge did not converge every host:"; tail -20 run.log; exit 1; }
echo "converge, $n hosts ($servers sshd): pbr peak RSS ${rss} MB, wall $wall"
run
noop=$(grep -cE '^x[0-9]+ +: ok=[0-9]+ +changed=0 +unreachable=0 +failed=0 ' run.log || true)
[ "$noop" = "$n" ] || { echo "the no-op run was not clean:"; tail -20 run.log; exit 1; }
echo "no-op,    $n hosts ($servers sshd): pbr peak RSS ${rss} MB, wall $wall"
