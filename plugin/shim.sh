#!/bin/bash
# lightly CNI plugin. Hands the invocation to the node's CNI server (no Node start-up per pod), or,
# when no server answers as one must, runs the plugin in-process with Node. Bash builtins only on
# the fast path. The protocol (lengths, not separators; both sides authenticated) is plugin/wire.ts.
#
# Server address file ("port token secret", root only, port below 1024): $LIGHTLY_CNI_ADDR, else the conf's
# "cniServer" field, else /run/lightly/cni.addr. Every read from the server is bounded by
# $LIGHTLY_CNI_TIMEOUT seconds (default 60, longer than any server-side deadline).
# Node for the fallback: $LIGHTLY_NODE, $LIGHTLY_HOME/bin/node, node. The in-process plugin is
# lightly.js beside this file (or beside the file a symlink to it points at), or
# $LIGHTLY_HOME/lib/lightly.js. LIGHTLY_HOME defaults to /opt/lightly, where install-cni puts both.
export LC_ALL=C # lengths count bytes
if [[ ${1:-} == --help || ${1:-} == -h ]]; then # a runtime passes no arguments (CNI spec: all in CNI_* and stdin)
  echo "usage: CNI_COMMAND=ADD|DEL|CHECK|STATUS|GC|VERSION CNI_CONTAINERID=… CNI_NETNS=… CNI_IFNAME=… CNI_PATH=… lightly < netconf.json"
  echo "The Lightly CNI plugin, called by the container runtime; see docs/cni-plugin.md."
  exit 0
fi
trap '' PIPE    # a server gone mid-write makes the write fail (then the fallback), not the shim die

IFS= read -r -d '' conf
nul=$? # 0 when the read stopped at a NUL byte, which a bash string cannot hold: only Node gets it whole

addr_file=${LIGHTLY_CNI_ADDR:-}
if [[ -z $addr_file && $conf =~ \"cniServer\"[[:space:]]*:[[:space:]]*\"([^\"]+)\" ]]; then
  addr_file=${BASH_REMATCH[1]}
fi
addr_file=${addr_file:-/run/lightly/cni.addr}
timeout=${LIGHTLY_CNI_TIMEOUT:-60}
digit='[0-9]'
# Checks are globs and fixed offsets, not =~: glibc compiles a regex on every match (~20 µs each).
is_secret() { [[ ${#1} == 32 && $1 != *[!A-Za-z0-9_-]* ]]; }

# Prints the server's answer and exits with its code, or returns so that the fallback runs.
through_server() {
  local port token secret lengths='' body='' name value header reply=''
  # A regular file, read with a bound: the path may come from a config key a pod author chose, and
  # root's /dev/zero never ends a line, a FIFO's open waits for a writer, /proc/kmsg for a message.
  [[ $nul != 0 && -f $addr_file && -r $addr_file && -O $addr_file ]] || return
  read -r -t 1 port token secret < "$addr_file" || return
  # A port below 1024, which only root can bind (the server listens on no other): a file that
  # another user made root's (/proc/PID/cmdline of a set-uid program is root's, with the first line
  # its caller chose) then names no port where that user could answer with the secret it wrote.
  [[ $port == [1-9]* && ${#port} -le 4 && $port != *[!0-9]* ]] && (( port < 1024 )) && is_secret "$token" && is_secret "$secret" || return
  for name in CNI_COMMAND CNI_CONTAINERID CNI_NETNS CNI_IFNAME CNI_ARGS CNI_PATH; do
    if [[ -v $name ]]; then
      value=${!name}
      lengths+="${#value} "
      body+=$value
    else
      lengths+='- '
    fi
  done
  # Bigger requests go in-process: the server's bound (wire.ts MAX_BODY_BYTES), and a write a peer
  # never reads could block where no read -t reaches.
  (( ${#body} + ${#conf} <= 262144 )) || return
  { exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null || return
  # One string, so one write: the request arrives whole, with no small segment waiting on an ACK.
  printf '%s' "LIGHTLY-CNI 2 $token"$'\n'"$lengths${#conf}"$'\n'"$body$conf" 2>/dev/null >&3 || return
  # A fixed-size header, so read -N takes it in one read(2):
  # "LIGHTLY-CNI 2 " secret(32) " " code(1) " " length(7 digits) "\n".
  IFS= read -r -t "$timeout" -N 57 header <&3 || return
  # Only the server knows the secret: a process that took the port of a dead server cannot answer.
  [[ ${header:0:14} == 'LIGHTLY-CNI 2 ' && ${header:14:32} == "$secret" && ${header:46} == \ [01]\ $digit$digit$digit$digit$digit$digit$digit$'\n' ]] || return
  local code=${header:47:1} length=$((10#${header:49:7}))
  # The server writes header and body with one write(2), so a body of up to 16 KiB is already queued
  # on this socket once the header is here (or the socket is closed, if the server died): read -t,
  # which costs two syscalls per byte (~0.5 ms for an ADD's reply), bounds only bigger ones.
  if (( length > 16384 )); then
    IFS= read -r -t "$timeout" -N "$length" reply <&3 && (( ${#reply} == length )) || return
  elif (( length > 0 )); then
    IFS= read -r -N "$length" reply <&3 && (( ${#reply} == length )) || return
  fi
  exec 3>&-
  printf '%s' "$reply"
  exit "$code"
}

through_server
exec 3>&- 2>/dev/null

home=${LIGHTLY_HOME:-/opt/lightly}
self=${BASH_SOURCE[0]}
script=${self%/*}/lightly.js
[[ -r $script || ! -L $self ]] || { self=$(readlink -f -- "$self") && script=${self%/*}/lightly.js; }
[[ -r $script ]] || script=$home/lib/lightly.js
node=${LIGHTLY_NODE:-}
[[ -z $node && -x $home/bin/node ]] && node=$home/bin/node
node=${node:-node}
if (( nul == 0 )); then
  # stdin as it came: what was read, the NUL, and the rest still unread.
  { printf '%s\0' "$conf"; exec cat; } 2>/dev/null | "$node" "$script"
  exit
fi
exec "$node" "$script" <<< "$conf"
