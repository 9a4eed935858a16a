#!/usr/bin/env bash
# Benchmark (not a test): converge runs (a fresh fleet each time: every task changes something)
# of the 20-task playbook over SSH to N throwaway sshd servers, pbr against ansible-playbook.
#   benches/ssh_converge.sh [N...]        (default: 10 100; ROUNDS, ANSIBLE_ROUNDS as ssh_noop.sh)
exec "$(dirname "$0")/ssh_noop.sh" --converge "$@"
