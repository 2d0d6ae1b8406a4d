# shellcheck shell=bash
# Shared settings and helpers of the hack/ scripts. Everything the scripts start lives under
# private directories, sockets and one network namespace, never under the system's defaults
# (/run/containerd, /var/lib/containerd, /etc/cni), so a system containerd is left alone.

set -euo pipefail

FERROLET_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export FERROLET_ROOT

# Runtime state (sockets, pids, mounts) and persistent data of the dev services.
: "${FERROLET_RUN_DIR:=/run/ferrolet-dev}"
: "${FERROLET_DATA_DIR:=/var/lib/ferrolet-dev}"
# The network namespace the dev node lives in: containerd, its CNI bridge and pods, and the
# loopback registry. Nothing is added to the host's own network.
: "${FERROLET_NETNS:=ferrolet-dev}"
# Pod CIDR of the dev node's CNI bridge (inside FERROLET_NETNS).
: "${FERROLET_POD_CIDR:=10.244.0.0/24}"
# The /30 linking the host to the node's namespace: the host side is .1 (where the node
# reaches the API server), the node side .2 (the node's IP, the route to its pods).
: "${FERROLET_NODE_SUBNET:=10.200.0.0/30}"
# The host side of that link (at most 15 characters).
: "${FERROLET_NODE_LINK:=fl-${FERROLET_NETNS#ferrolet-}}"
: "${FERROLET_REGISTRY_PORT:=5000}"
# The cgroup (in every hierarchy) under which this instance's pods are put.
: "${FERROLET_CGROUP_PARENT:=ferrolet-dev}"
export FERROLET_RUN_DIR FERROLET_DATA_DIR FERROLET_NETNS FERROLET_POD_CIDR FERROLET_REGISTRY_PORT \
	FERROLET_CGROUP_PARENT FERROLET_NODE_SUBNET FERROLET_NODE_LINK

# subnet_host 10.200.0.0/30 2 -> 10.200.0.2
subnet_host() {
	local net=${1%/*} n=$2 a b c d
	IFS=. read -r a b c d <<<"$net"
	echo "$a.$b.$c.$((d + n))"
}
FERROLET_HOST_IP=$(subnet_host "$FERROLET_NODE_SUBNET" 1)
FERROLET_NODE_IP=$(subnet_host "$FERROLET_NODE_SUBNET" 2)
export FERROLET_HOST_IP FERROLET_NODE_IP

CONTAINERD_DIR=$FERROLET_RUN_DIR/containerd
CONTAINERD_ROOT=$FERROLET_DATA_DIR/containerd
CONTAINERD_SOCK=$CONTAINERD_DIR/containerd.sock
export FERROLET_CONTAINERD_ENDPOINT=unix://$CONTAINERD_SOCK
REGISTRY_DIR=$FERROLET_RUN_DIR/registry
# The CNI network name; libcni keeps its result cache under /var/lib/cni with this prefix.
CNI_NETWORK=$FERROLET_NETNS
# Cgroup parents this instance's pods are put under (cleaned when empty).
CGROUP_PARENTS=("$FERROLET_CGROUP_PARENT")

log() { printf '%s [%s] %s\n' "$(date +%H:%M:%S)" "$(basename "$0")" "$*" >&2; }
die() { log "error: $*"; exit 1; }

require_root() {
	[[ $(id -u) -eq 0 ]] || die "must run as root (namespaces, mounts and cgroups need it)"
}

# The cargo target directory (CARGO_TARGET_DIR if set, like cargo itself).
target_dir() { echo "${CARGO_TARGET_DIR:-$FERROLET_ROOT/target}"; }

# Runs a command inside the dev network namespace (network only: the mount namespace stays
# the host's, so mounts made by containerd are visible to the node agent).
in_netns() { nsenter --net="/run/netns/$FERROLET_NETNS" -- "$@"; }

netns_exists() { ip netns list | awk '{ print $1 }' | grep -qxF "$FERROLET_NETNS"; }

netns_up() {
	if ! netns_exists; then
		ip netns add "$FERROLET_NETNS"
		log "created network namespace $FERROLET_NETNS"
	fi
	ip -n "$FERROLET_NETNS" link set lo up
	# A veth to the host: the node reaches the API server on the host side, the host
	# reaches the node and, through it, the pods (routed, no NAT).
	if ! ip link show "$FERROLET_NODE_LINK" >/dev/null 2>&1; then
		ip link add "$FERROLET_NODE_LINK" type veth peer name eth0 netns "$FERROLET_NETNS"
		ip addr add "$FERROLET_HOST_IP/30" dev "$FERROLET_NODE_LINK"
		ip link set "$FERROLET_NODE_LINK" up
		ip -n "$FERROLET_NETNS" addr add "$FERROLET_NODE_IP/30" dev eth0
		ip -n "$FERROLET_NETNS" link set eth0 up
		ip -n "$FERROLET_NETNS" route add default via "$FERROLET_HOST_IP"
		ip netns exec "$FERROLET_NETNS" sysctl -q -w net.ipv4.ip_forward=1
	fi
	ip route replace "$FERROLET_POD_CIDR" via "$FERROLET_NODE_IP" dev "$FERROLET_NODE_LINK"
}

netns_down() {
	netns_exists || return 0
	local pids
	pids=$(ip netns pids "$FERROLET_NETNS" 2>/dev/null || true)
	if [[ -n $pids ]]; then
		log "killing processes left in $FERROLET_NETNS: $(echo "$pids" | tr '\n' ' ')"
		# shellcheck disable=SC2086
		kill -KILL $pids 2>/dev/null || true
		sleep 0.2
	fi
	ip netns delete "$FERROLET_NETNS"
	# Deleting the namespace destroys the veth pair and, with it, the pod route.
	ip link delete "$FERROLET_NODE_LINK" 2>/dev/null || true
}

# Waits up to $2 seconds for the pid in file $1 to exit; then kills it.
stop_pidfile() {
	local pidfile=$1 grace=${2:-10} pid i
	[[ -f $pidfile ]] || return 0
	pid=$(cat "$pidfile")
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < grace * 10; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$pidfile"
}

# Unmounts everything mounted at or below the given directories, deepest first.
unmount_below() {
	local dir mounts
	for dir in "$@"; do
		[[ -e $dir ]] || continue
		dir=$(realpath "$dir")
		mounts=$(awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r)
		local m
		for m in $mounts; do
			umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "warning: cannot unmount $m"
		done
	done
}

# Removes the (empty) cgroup directories ferrolet's pods were put under, in every hierarchy.
remove_cgroups() {
	local parent hierarchy
	for parent in "${CGROUP_PARENTS[@]}"; do
		for hierarchy in /sys/fs/cgroup /sys/fs/cgroup/*/; do
			[[ -d $hierarchy/$parent ]] || continue
			# Children before parents; rmdir fails (and says so) if a process is still inside.
			find "$hierarchy/$parent" -depth -type d -exec rmdir {} \; 2>/dev/null ||
				log "warning: cgroup $hierarchy/$parent is still in use"
		done
	done
}

# Fails, listing them, if the dev services left anything on the host: processes, mounts,
# network namespace, cgroups.
assert_clean() {
	local leftovers=() parent hierarchy
	netns_exists && leftovers+=("network namespace $FERROLET_NETNS")
	ip link show "$FERROLET_NODE_LINK" >/dev/null 2>&1 && leftovers+=("link $FERROLET_NODE_LINK")
	pgrep -f -- "$CONTAINERD_SOCK" >/dev/null && leftovers+=("processes: $(pgrep -f -- "$CONTAINERD_SOCK" | tr '\n' ' ')")
	pgrep -f -- "$REGISTRY_DIR/config.yml" >/dev/null && leftovers+=("registry process")
	if awk -v a="$FERROLET_RUN_DIR" -v b="$FERROLET_DATA_DIR" \
		'index($5, a "/") == 1 || index($5, b "/") == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
		leftovers+=("mounts under $FERROLET_RUN_DIR or $FERROLET_DATA_DIR")
	fi
	for parent in "${CGROUP_PARENTS[@]}"; do
		for hierarchy in /sys/fs/cgroup/*/; do
			[[ ! -d $hierarchy$parent ]] || leftovers+=("cgroup $hierarchy$parent")
		done
	done
	if ((${#leftovers[@]})); then
		printf '  left behind: %s\n' "${leftovers[@]}" >&2
		return 1
	fi
}
