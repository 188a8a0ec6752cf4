#!/bin/bash
# lightly CNI plugin. Hands the invocation to the node's CNI server (no Node start-up per pod), or,
# when none is running, runs the plugin in-process with Node. Bash builtins only on the fast path.
#
# Server address file ("port token", root only): $LIGHTLY_CNI_ADDR, else the conf's "cniServer"
# field, else /run/lightly/cni.addr. Node for the fallback: $LIGHTLY_NODE, $LIGHTLY_HOME/bin/node, node.
# The in-process plugin is lightly.js beside this file, or $LIGHTLY_HOME/lib/lightly.js.
# LIGHTLY_HOME defaults to /opt/lightly, where the DaemonSet's install-cni puts both.
export LC_ALL=C
IFS= read -r -d '' conf || true

addr_file=${LIGHTLY_CNI_ADDR:-}
if [[ -z $addr_file && $conf =~ \"cniServer\"[[:space:]]*:[[:space:]]*\"([^\"]+)\" ]]; then
  addr_file=${BASH_REMATCH[1]}
fi
addr_file=${addr_file:-/run/lightly/cni.addr}

if [[ -r $addr_file ]] && read -r port token < "$addr_file" && exec 3<>"/dev/tcp/127.0.0.1/$port" 2>/dev/null; then
  request="LIGHTLY-CNI 1 $token"$'\n'
  for name in CNI_COMMAND CNI_CONTAINERID CNI_NETNS CNI_IFNAME CNI_ARGS CNI_PATH; do
    [[ -v $name ]] && request+="$name=${!name}"$'\n'
  done
  printf '%s\n%d\n%s' "$request" "${#conf}" "$conf" >&3
  if IFS= read -r code <&3; then
    IFS= read -r -d '' reply <&3 || true
    exec 3>&-
    printf '%s' "$reply"
    exit "$code"
  fi
  exec 3>&-
  # The server closed without answering (restarting?): fall through to the in-process plugin.
fi

home=${LIGHTLY_HOME:-/opt/lightly}
here=${BASH_SOURCE[0]%/*}
script=$here/lightly.js
[[ -r $script ]] || script=$home/lib/lightly.js
node=${LIGHTLY_NODE:-}
[[ -z $node && -x $home/bin/node ]] && node=$home/bin/node
node=${node:-node}
exec "$node" "$script" <<< "$conf"
