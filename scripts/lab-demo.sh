#!/usr/bin/env bash
# The lab demo: 3 nodes × 2 pods as network namespaces, each node running lightly-agent (our BGP
# speaker) and the lightly CNI plugin; every pod pings every other pod; the lab stays up to explore.
set -euo pipefail
cd "$(dirname "$0")/.."
lab() { node dist/bin/lightly-lab.js "$@"; }

lab down >/dev/null 2>&1 || true   # a lab left from an earlier run
lab up --nodes 3 --pods 2 --json > /tmp/lightly-lab.json
echo
echo "== waiting for BGP to converge"
for _ in $(seq 1 50); do
  n=$(ip -n lt-node-1 route show proto 201 | grep -c ' via ' || true)
  [ "$n" -ge 2 ] && break
  sleep 0.2
done

echo "== every pod pings every other pod"
mapfile -t pods < <(node -e 'for (const n of JSON.parse(require("fs").readFileSync("/tmp/lightly-lab.json")).nodes) for (const p of n.pods) console.log(`${p.netns} ${p.ip} ${p.name}`)')
fails=0
for from in "${pods[@]}"; do
  read -r fns fip fname <<< "$from"
  line="$fname ($fip) →"
  for to in "${pods[@]}"; do
    read -r tns tip tname <<< "$to"
    [ "$fns" = "$tns" ] && continue
    if ip netns exec "$fns" ping -c 1 -W 1 "$tip" >/dev/null; then line+=" $tname ok"; else line+=" $tname FAILED"; fails=$((fails+1)); fi
  done
  echo "$line"
done

echo
echo "== lightlyctl bgp status on node-1"
node dist/bin/lightlyctl.js --socket /run/lightly/lab/node-1.sock bgp status
echo
echo "== node-1's routes (proto lightly)"
ip -n lt-node-1 route show proto 201

cat <<'TXT'

The lab is still up. To explore:
  ip netns exec lt-pod-1-1 ping 10.244.2.2                       # pod to pod across nodes
  node dist/bin/lightlyctl.js --socket /run/lightly/lab/node-2.sock bgp status [--json]
  node dist/bin/lightlyctl.js --socket /run/lightly/lab/node-2.sock routes
  node dist/bin/lightly-lab.js status                            # agents, pods, addresses
  node dist/bin/lightly-lab.js add-node                          # a node joins, no restarts
  less /run/lightly/lab/node-1.log                               # the agent's JSON log
To tear it all down:
  node dist/bin/lightly-lab.js down
TXT
[ "$fails" -eq 0 ] || { echo "$fails pings failed" >&2; exit 1; }
