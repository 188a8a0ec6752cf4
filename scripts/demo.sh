#!/usr/bin/env bash
# Lightly demo: set-up, then the lab (3 nodes × 2 pods, pings, BGP status), left up to explore.
# Without a built lab it falls back to the plugin alone. Everything lives in lt-* namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

if [ -x dist/bin/lightly-lab.js ]; then
  exec bash scripts/lab-demo.sh
fi

node_ns=lt-demo-node; up_ns=lt-demo-up; pod_ns=lt-demo-pod
data=$(mktemp -d /tmp/lt-demo-data.XXXX)
cleanup() { for ns in $pod_ns $node_ns $up_ns; do ip netns del $ns 2>/dev/null || true; done; rm -rf "$data"; }
trap cleanup EXIT
cleanup; data=$(mktemp -d /tmp/lt-demo-data.XXXX)

for ns in $node_ns $up_ns $pod_ns; do ip netns add $ns; ip -n $ns link set lo up; done
# The node needs an uplink with a default route: Linux answers proxy ARP only for routable targets.
ip -n $node_ns link add up0 type veth peer name up1 netns $up_ns
ip -n $node_ns addr add 192.0.2.1/24 dev up0; ip -n $node_ns link set up0 up
ip -n $up_ns addr add 192.0.2.254/24 dev up1; ip -n $up_ns link set up1 up
ip -n $node_ns route add default via 192.0.2.254

conf='{"cniVersion":"1.1.0","name":"lightly-demo","type":"lightly","ipam":{"subnet":"10.244.1.0/24"},"mtu":1500,"dataDir":"'$data'"}'
cni() { ip netns exec $node_ns env CNI_COMMAND=$1 CNI_CONTAINERID=demo-pod CNI_NETNS=/var/run/netns/$pod_ns CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni dist/bin/lightly.js; }

echo "== ADD"; echo "$conf" | cni ADD | tee "$data/result.json"; echo
echo "== inside the pod"; ip -n $pod_ns -br addr show dev eth0; ip -n $pod_ns route
echo "== on the node"; ip -n $node_ns route show proto 201
echo "== ping the pod from the node"; ip netns exec $node_ns ping -c 3 -i 0.2 "$(sed -E 's/.*"address":"([0-9.]+)\/32".*/\1/' "$data/result.json")"
echo "== DEL"; echo "$conf" | cni DEL && echo "deleted; node routes now:"; ip -n $node_ns route show proto 201
