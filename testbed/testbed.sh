#!/usr/bin/env bash
# SSH testbed for stv3ctl: N "hosts" on this machine, each an sshd on
# 127.0.0.1:<port> with its own host key, running in its own mount namespace
# where /etc, /root, /opt/stv3, /var/log/stv3, /run/stv3 and /var/lib/stv3 are
# private bind mounts (a private, empty /root: this machine's root dotfiles,
# e.g. a pyenv-initialising .bashrc, would otherwise run on every remote
# command of every tool). No systemd: the hosts use the SysV scripts.
#
#   testbed/testbed.sh up   DIR [N] [BASE_PORT]   # default N=3, BASE_PORT=22001
#   testbed/testbed.sh down DIR
#   testbed/testbed.sh wipe DIR                   # fresh hosts again: empty private dirs, no stv3
#                                                 # account, no database (keeps sshd up)
#
# `up` writes DIR/client (SSH key), DIR/known_hosts, DIR/inventory.yaml (region
# `tb`: h1, h2 = workers, h3 = api + db) and DIR/secrets.yaml. The database server
# is this machine's MariaDB (127.0.0.1:3306, root without password): `up` creates
# the admin account the db role provisions with (stv3tb_admin: CREATE USER and all
# privileges on `stv3_tb%` databases, with grant option); the database
# stv3_tb<BASE_PORT> and its app user stv3tb<BASE_PORT> are left to `stv3ctl deploy`
# (D8). `up` and `wipe` drop both, so every first deploy starts from nothing.
set -euo pipefail

cmd=${1:?usage: testbed.sh up|down|wipe DIR [N] [BASE_PORT]}
dir=${2:?DIR}
n=${3:-3}
base=${4:-22001}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
if [ "$cmd" = up ]; then echo "$base" > "$dir/base_port"
elif [ -f "$dir/base_port" ]; then base=$(cat "$dir/base_port")
fi

private_mounts=(/opt/stv3 /var/log/stv3 /run/stv3 /var/lib/stv3)
db_name=stv3_tb$base
db_user=stv3tb$base
# Service ports move with the base port, so two testbeds can run side by side.
off=$((base - 22001))

reset_db() { # drop the testbed's database and app user; (re)create the admin account
    command -v mysql >/dev/null 2>&1 || { echo "testbed: no mysql client; the db role needs one" >&2; return 0; }
    mysql -uroot -h127.0.0.1 -e "DROP DATABASE IF EXISTS \`$db_name\`;
        DROP USER IF EXISTS '$db_user'@'127.0.0.1', '$db_user'@'localhost';
        DROP USER IF EXISTS 'stv3tb_admin'@'127.0.0.1', 'stv3tb_admin'@'localhost';
        CREATE USER 'stv3tb_admin'@'127.0.0.1' IDENTIFIED BY 'stv3-testbed-admin-pw';
        CREATE USER 'stv3tb_admin'@'localhost' IDENTIFIED BY 'stv3-testbed-admin-pw';
        GRANT CREATE USER ON *.* TO 'stv3tb_admin'@'127.0.0.1', 'stv3tb_admin'@'localhost';
        GRANT ALL PRIVILEGES ON \`stv3_tb%\`.* TO 'stv3tb_admin'@'127.0.0.1', 'stv3tb_admin'@'localhost' WITH GRANT OPTION;" \
        || echo "testbed: could not reset the MariaDB database $db_name" >&2
}

stop_host() {
    local h=$1
    if [ -f "$dir/$h/sshd.pid" ]; then
        local pid
        pid=$(cat "$dir/$h/sshd.pid")
        # Stop the services started inside this host (their pidfiles live in its private /run/stv3).
        for p in "$dir/$h/run/"*.pid; do
            [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null || true
        done
        kill "$pid" 2>/dev/null || true
        rm -f "$dir/$h/sshd.pid"
    fi
}

case "$cmd" in
up)
    if [ ! -x /usr/sbin/sshd ]; then
        echo "testbed: installing openssh-server" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y openssh-server >/dev/null
    fi
    command -v start-stop-daemon >/dev/null || { echo "testbed: start-stop-daemon missing" >&2; exit 1; }
    for m in "${private_mounts[@]}"; do mkdir -p "$m"; done
    [ -f "$dir/client" ] || ssh-keygen -q -t ed25519 -N '' -C stv3-testbed -f "$dir/client"
    cp "$dir/client.pub" "$dir/authorized_keys"
    chmod 600 "$dir/authorized_keys"
    : > "$dir/known_hosts"
    for i in $(seq 1 "$n"); do
        h=h$i
        port=$((base + i - 1))
        stop_host "$h"
        mkdir -p "$dir/$h"/{opt,log,run,lib,root}
        if [ ! -d "$dir/$h/etc" ]; then
            cp -a /etc "$dir/$h/etc"
            rm -f "$dir/$h/etc/ssh/ssh_host_"*
            ssh-keygen -q -t ed25519 -N '' -f "$dir/$h/etc/ssh/ssh_host_ed25519_key"
        fi
        cat > "$dir/$h/etc/ssh/sshd_stv3_testbed.conf" <<CONF
Port $port
ListenAddress 127.0.0.1
HostKey /etc/ssh/ssh_host_ed25519_key
PidFile $dir/$h/sshd.pid
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile $dir/authorized_keys
StrictModes no
UsePAM no
MaxSessions 50
MaxStartups 50
Subsystem sftp internal-sftp
CONF
        echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$dir/$h/etc/ssh/ssh_host_ed25519_key.pub")" >> "$dir/known_hosts"
        mkdir -p /run/sshd
        # The namespace: private /etc and stv3 dirs; sshd daemonizes inside it.
        unshare --mount --propagation private -- sh -c '
            d=$1; h=$2
            mount --bind "$d/$h/etc" /etc
            mount --bind "$d/$h/root" /root
            mount --bind "$d/$h/opt" /opt/stv3
            mount --bind "$d/$h/log" /var/log/stv3
            mount --bind "$d/$h/run" /run/stv3
            mount --bind "$d/$h/lib" /var/lib/stv3
            exec /usr/sbin/sshd -f /etc/ssh/sshd_stv3_testbed.conf
        ' sh "$dir" "$h"
        for _ in $(seq 1 50); do [ -f "$dir/$h/sshd.pid" ] && break; sleep 0.1; done
        echo "testbed: $h sshd on 127.0.0.1:$port (pid $(cat "$dir/$h/sshd.pid"))"
    done
    cat > "$dir/inventory.yaml" <<INV
# Generated by testbed/testbed.sh: region tb on the local SSH testbed.
regions:
  tb:
    ssh:
      user: root
      identity_file: $dir/client
      known_hosts: $dir/known_hosts
    init: sysv
    keep_releases: 3
    database:
      url: mysql://$db_user@127.0.0.1:3306/$db_name
      admin_user: stv3tb_admin
    api:
      bind: 127.0.0.1:$((18000 + off))
    health:
      settle_seconds: 1
      timeout_seconds: 15
    cells:
      - name: cell1
        rabbit: {url: amqp://guest@127.0.0.1:5672, vhost: /}
        queues:
          - {name: stv3tb$base.cell1.info, routing_key: tb$base.cell1.info}
      - name: cell2
        rabbit: {url: amqp://guest@127.0.0.1:5672, vhost: /}
        queues:
          - {name: stv3tb$base.cell2.info, routing_key: tb$base.cell2.info}
    hosts:
      - {name: h1, address: 127.0.0.1, port: $base, roles: [worker], pipeline_workers: 2, ops_port_base: $((19100 + off))}
      - {name: h2, address: 127.0.0.1, port: $((base + 1)), roles: [worker], pipeline_workers: 2, ops_port_base: $((19300 + off))}
      - {name: h3, address: 127.0.0.1, port: $((base + 2)), roles: [api, db], ops_port_base: $((19500 + off))}
INV
    cat > "$dir/secrets.yaml" <<SEC
database: stv3-testbed-db-pw
database_admin: stv3-testbed-admin-pw
rabbit_cell1: guest
rabbit_cell2: guest
SEC
    chmod 600 "$dir/secrets.yaml"
    reset_db
    ;;
down)
    for hdir in "$dir"/h*; do
        [ -d "$hdir" ] && stop_host "$(basename "$hdir")"
    done
    ;;
wipe)
    for hdir in "$dir"/h*; do
        [ -d "$hdir" ] || continue
        h=$(basename "$hdir")
        for p in "$hdir/run/"*.pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null || true; done
        rm -rf "${hdir:?}"/{opt,log,run,lib}/* "${hdir:?}"/{opt,log,run,lib}/.[!.]* 2>/dev/null || true
        rm -f "$hdir"/etc/init.d/stv3-* "$hdir"/etc/logrotate.d/stv3
        rm -rf "$hdir"/etc/stv3
        for rc in "$hdir"/etc/rc?.d; do rm -f "$rc"/[SK][0-9][0-9]stv3-*; done
        # The service account too (each host has its own /etc): a first deploy creates it.
        for f in passwd shadow group gshadow; do
            [ -f "$hdir/etc/$f" ] && sed -i '/^stv3:/d' "$hdir/etc/$f"
        done
    done
    reset_db
    ;;
*)
    echo "usage: testbed.sh up|down|wipe DIR [N] [BASE_PORT]" >&2
    exit 2
    ;;
esac
