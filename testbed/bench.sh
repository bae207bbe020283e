#!/usr/bin/env bash
# Deploy benchmark: stv3ctl vs the Ansible anchor on the same 3-host testbed,
# back to back. Prints one line per timed run.
#   testbed/bench.sh STV3CTL TARBALL [REPS]
# Needs: the testbed up in /tmp/ans-tb (testbed/testbed.sh up /tmp/ans-tb), ansible-core in
# /tmp/ans-venv, the anchor copied to /tmp/ans-anchor and its tarball from make-tarball.sh.
# Before each first deploy the hosts are wiped (testbed.sh wipe: no files, no stv3 account,
# no database), so both tools start from nothing.
set -eu
stv3ctl=${1:?stv3ctl binary}; tarball=${2:?release tarball}; reps=${3:-3}
tb=/tmp/ans-tb
here=$(cd "$(dirname "$0")" && pwd)
inv=(-r tb -i "$tb/inventory.yaml" --secrets "$tb/secrets.yaml" --allow-insecure-defaults)
export ANSIBLE_CONFIG=/tmp/ans-anchor/ansible.cfg ANSIBLE_DEPRECATION_WARNINGS=False
mkdir -p /tmp/stv3-bench

t() { # t LABEL CMD...: wall time of one run, and the load average right after it
    local label=$1; shift
    local t0 t1 rc=0
    t0=$(date +%s.%N)
    "$@" > "/tmp/stv3-bench/$label.log" 2>&1 || rc=$?
    t1=$(date +%s.%N)
    printf '%-28s %7.2f s rc=%s load %s\n' "$label" "$(echo "$t1 - $t0" | bc)" "$rc" \
        "$(cut -d' ' -f1-3 /proc/loadavg)"
}
close_masters() {
    for s in /tmp/ans-cp/*; do [ -S "$s" ] && ssh -o ControlPath="$s" -O exit dummy 2>/dev/null || true; done
}

for r in $(seq "$reps"); do
    "$here/testbed.sh" wipe "$tb"
    t "stv3ctl-first-$r" "$stv3ctl" deploy "${inv[@]}" -p "$tarball"
    t "stv3ctl-rerun-$r" "$stv3ctl" deploy "${inv[@]}" -p "$tarball"
    "$here/testbed.sh" wipe "$tb"
    close_masters
    t "ansible-first-$r" /tmp/ans-venv/bin/ansible-playbook /tmp/ans-anchor/deploy.yml
    t "ansible-rerun-$r" /tmp/ans-venv/bin/ansible-playbook /tmp/ans-anchor/deploy.yml
done
"$here/testbed.sh" wipe "$tb"
