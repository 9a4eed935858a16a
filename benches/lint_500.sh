#!/bin/sh
# Time `pbr lint` on a generated playbook of 500 tasks: 300 in the playbook (files, templates,
# loops, conditions, handlers) and 200 in 4 roles with defaults, handlers and templates.
#
#   benches/lint_500.sh            # uses target/release/pbr (PBR=... to choose another binary)
#   RUNS=50 benches/lint_500.sh
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
PBR=${PBR:-$here/target/release/pbr}
RUNS=${RUNS:-20}
[ -x "$PBR" ] || { echo "no binary at $PBR (cargo build --release, or set PBR=)" >&2; exit 1; }

dir=$(mktemp -d)
[ -n "${KEEP:-}" ] || trap 'rm -rf "$dir"' EXIT INT TERM

mkdir -p "$dir/templates" "$dir/group_vars"
printf 'listen {{ port }};\n{%% for u in users %%}user {{ u.name }};\n{%% endfor %%}\n' > "$dir/templates/app.conf.j2"
cat > "$dir/group_vars/all.yml" <<'EOF'
port: 8080
users:
  - name: alice
  - name: bob
base: /srv
EOF

for r in 1 2 3 4; do
  rd="$dir/roles/role$r"
  mkdir -p "$rd/tasks" "$rd/handlers" "$rd/defaults" "$rd/templates"
  printf 'role%s_dir: /opt/role%s\nrole%s_mode: "0755"\n' "$r" "$r" "$r" > "$rd/defaults/main.yml"
  printf '# role %s\nkey = {{ role%s_dir }}\n' "$r" "$r" > "$rd/templates/conf.j2"
  printf -- '- name: restart role%s\n  systemd:\n    name: role%s\n    state: restarted\n' "$r" "$r" > "$rd/handlers/main.yml"
  {
    i=0
    while [ $i -lt 50 ]; do
      case $((i % 5)) in
        0) printf -- '- name: role%s dir %s\n  file:\n    path: "{{ role%s_dir }}/d%s"\n    state: directory\n    mode: "{{ role%s_mode }}"\n' "$r" $i "$r" $i "$r" ;;
        1) printf -- '- name: role%s conf %s\n  template:\n    src: conf.j2\n    dest: "{{ role%s_dir }}/c%s.conf"\n    mode: "0644"\n  notify: restart role%s\n' "$r" $i "$r" $i "$r" ;;
        2) printf -- '- name: role%s line %s\n  lineinfile:\n    path: "{{ role%s_dir }}/c.conf"\n    regexp: "^k%s="\n    line: "k%s={{ port }}"\n  when: port | int > 0\n' "$r" $i "$r" $i $i ;;
        3) printf -- '- name: role%s cmd %s\n  command: /bin/echo {{ item }}\n  loop: "{{ users | map(attribute=\x27name\x27) | list }}"\n  register: out%s\n  changed_when: false\n' "$r" $i $i ;;
        4) printf -- '- name: role%s stat %s\n  stat:\n    path: "{{ role%s_dir }}"\n  register: st%s\n' "$r" $i "$r" $i ;;
      esac
      i=$((i + 1))
    done
  } > "$rd/tasks/main.yml"
done

{
  printf -- '- hosts: all\n  gather_facts: false\n  vars:\n    app: demo\n  roles:\n    - role1\n    - role2\n    - role3\n    - role4\n  tasks:\n'
  i=0
  while [ $i -lt 300 ]; do
    case $((i % 6)) in
      0) printf -- '    - name: dir %s\n      file:\n        path: "{{ base }}/{{ app }}/%s"\n        state: directory\n        mode: "0755"\n' $i $i ;;
      1) printf -- '    - name: conf %s\n      template:\n        src: app.conf.j2\n        dest: "{{ base }}/{{ app }}/%s.conf"\n        mode: "0644"\n      notify: reload app\n' $i $i ;;
      2) printf -- '    - name: copy %s\n      copy:\n        content: "{{ app }} %s\\n"\n        dest: "{{ base }}/%s.txt"\n      when: app is defined and port > 1000\n' $i $i $i ;;
      3) printf -- '    - name: block %s\n      block:\n        - name: inner %s\n          shell: echo {{ app }} > /dev/null\n          changed_when: false\n      rescue:\n        - name: note %s\n          debug:\n            msg: "failed {{ inventory_hostname }}"\n' $i $i $i ;;
      4) printf -- '    - name: replace %s\n      replace:\n        path: "{{ base }}/%s.txt"\n        regexp: "old"\n        replace: "new-{{ app }}"\n' $i $i ;;
      5) printf -- '    - name: fact %s\n      set_fact:\n        fact%s: "{{ app | upper }}"\n' $i $i ;;
    esac
    i=$((i + 1))
  done
  printf -- '  handlers:\n    - name: reload app\n      systemd:\n        name: app\n        state: reloaded\n'
} > "$dir/site.yml"

# lint from the temp dir: no ./inventory of the caller is picked up
cd "$dir"
tasks=$(grep -c -- '- name:' "$dir/site.yml" "$dir"/roles/*/tasks/main.yml | awk -F: '{s+=$2} END {print s}')
echo "generated $tasks named tasks (blocks count their inner tasks) in $dir"
"$PBR" lint "$dir/site.yml" | tail -n 1

if command -v hyperfine >/dev/null 2>&1; then
  hyperfine --warmup 3 --runs "$RUNS" "$PBR lint $dir/site.yml"
else
  total=0
  best=
  n=0
  while [ $n -lt "$RUNS" ]; do
    t0=$(date +%s%N)
    "$PBR" lint "$dir/site.yml" >/dev/null || true
    t1=$(date +%s%N)
    ms=$(( (t1 - t0) / 1000000 ))
    total=$((total + ms))
    if [ -z "$best" ] || [ $ms -lt "$best" ]; then best=$ms; fi
    n=$((n + 1))
  done
  echo "pbr lint, $RUNS runs: mean $((total / RUNS)) ms, best $best ms"
fi
