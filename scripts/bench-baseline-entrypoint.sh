#!/bin/sh
# The baseline sandbox-init is compared against (scripts/bench-boot): the common shell-entrypoint
# approach, applying the SAME policy with one iptables/ip6tables process per rule and one
# `getent ahosts` per name, then dropping to the agent with setpriv.
#
#   bench-baseline-entrypoint.sh CONFIG_DIR -- COMMAND [ARGS...]
#
# CONFIG_DIR holds the legacy line files `allowed-hosts` / `allowed-networks` (which sandbox-init
# reads too) and optionally `egress` containing "allowlist". Benchmark only: not a product.
set -eu
cfg="$1"; shift
[ "${1:-}" = -- ] && shift

egress=open
[ -f "$cfg/egress" ] && egress="$(cat "$cfg/egress")"

for fam in iptables ip6tables; do
    $fam -w -N BASELINE 2>/dev/null || $fam -w -F BASELINE
    $fam -w -C OUTPUT -j BASELINE 2>/dev/null || $fam -w -I OUTPUT -j BASELINE
    $fam -w -A BASELINE -o lo -j ACCEPT
    $fam -w -A BASELINE -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
done
for t in 133 134 135 136; do
    ip6tables -w -A BASELINE -p ipv6-icmp --icmpv6-type $t -j ACCEPT
done

fam_of() { case "$1" in *:*) echo ip6tables ;; *) echo iptables ;; esac; }

# allow ADDR_OR_CIDR [PORT]
allow() {
    fam="$(fam_of "$1")"
    if [ -n "${2:-}" ]; then
        $fam -w -A BASELINE -d "$1" -p tcp --dport "$2" -j ACCEPT
        $fam -w -A BASELINE -d "$1" -p udp --dport "$2" -j ACCEPT
    else
        $fam -w -A BASELINE -d "$1" -j ACCEPT
    fi
}

# DNS to the configured resolvers only.
for ns in $(awk '$1 == "nameserver" { print $2 }' /etc/resolv.conf); do
    fam="$(fam_of "$ns")"
    $fam -w -A BASELINE -d "$ns" -p udp --dport 53 -j ACCEPT
    $fam -w -A BASELINE -d "$ns" -p tcp --dport 53 -j ACCEPT
done

# Allowlisted hosts: NAME, NAME:PORT, IPv4, IPv4:PORT, IPv6, [IPv6]:PORT.
if [ -f "$cfg/allowed-hosts" ]; then
    sed -e 's/#.*//' -e 's/[[:space:]]//g' "$cfg/allowed-hosts" | while read -r entry; do
        [ -n "$entry" ] || continue
        port=
        case "$entry" in
            \[*\]:*) host="${entry%%]:*}"; host="${host#[}"; port="${entry##*]:}" ;;
            *:*:*) host="$entry" ;;
            *:*) host="${entry%:*}"; port="${entry##*:}" ;;
            *) host="$entry" ;;
        esac
        case "$host" in
            *[!0-9.]*)
                case "$host" in
                    *:*) allow "$host" "$port" ;;
                    *) for a in $(getent ahosts "$host" | awk '{ print $1 }' | sort -u); do
                           allow "$a" "$port"
                       done ;;
                esac ;;
            *) allow "$host" "$port" ;;
        esac
    done
fi

# Allowlisted networks: CIDR or CIDR:PORT.
if [ -f "$cfg/allowed-networks" ]; then
    sed -e 's/#.*//' -e 's/[[:space:]]//g' "$cfg/allowed-networks" | while read -r entry; do
        [ -n "$entry" ] || continue
        case "$entry" in
            *:*:*/*:*|*.*/*:*) allow "${entry%:*}" "${entry##*:}" ;;
            *) allow "$entry" ;;
        esac
    done
fi

# The same blocked ranges as sandbox-init (docs/net.md), TCP reset + ICMP admin-prohibited.
for r in 0.0.0.0/8 10.0.0.0/8 100.64.0.0/10 169.254.0.0/16 172.16.0.0/12 192.0.0.0/24 \
         192.168.0.0/16 198.18.0.0/15 224.0.0.0/4 240.0.0.0/4 168.63.129.16/32; do
    iptables -w -A BASELINE -d "$r" -p tcp -j REJECT --reject-with tcp-reset
    iptables -w -A BASELINE -d "$r" -j REJECT --reject-with icmp-admin-prohibited
done
for r in fc00::/7 fe80::/10 ff00::/8 ::ffff:0:0/96 \
         64:ff9b::/104 2002::/24 64:ff9b::a00:0/104 2002:a00::/24 64:ff9b::6440:0/106 \
         2002:6440::/26 64:ff9b::a9fe:0/112 2002:a9fe::/32 64:ff9b::ac10:0/108 2002:ac10::/28 \
         64:ff9b::c000:0/120 2002:c000::/40 64:ff9b::c0a8:0/112 2002:c0a8::/32 \
         64:ff9b::c612:0/111 2002:c612::/31 64:ff9b::e000:0/100 2002:e000::/20 \
         64:ff9b::f000:0/100 2002:f000::/20 64:ff9b::a83f:8110/128 2002:a83f:8110::/48; do
    ip6tables -w -A BASELINE -d "$r" -p tcp -j REJECT --reject-with tcp-reset
    ip6tables -w -A BASELINE -d "$r" -j REJECT --reject-with icmp6-adm-prohibited
done
if [ "$egress" = allowlist ]; then
    iptables -w -A BASELINE -p tcp -j REJECT --reject-with tcp-reset
    iptables -w -A BASELINE -j REJECT --reject-with icmp-admin-prohibited
    ip6tables -w -A BASELINE -p tcp -j REJECT --reject-with tcp-reset
    ip6tables -w -A BASELINE -j REJECT --reject-with icmp6-adm-prohibited
fi

exec setpriv --reuid=1000 --regid=1000 --clear-groups --inh-caps=-all --bounding-set=-all \
    --no-new-privs -- "$@"
