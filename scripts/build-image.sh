#!/usr/bin/env bash
# Builds the Lightly image with podman and no container registry: a base root filesystem made from
# Debian's packages with mmdebstrap, imported into podman, then deploy/Dockerfile on top of it.
#
#   scripts/build-image.sh [--tag IMAGE] [--base IMAGE] [--push]
#
# --tag   the image to build (default ghcr.io/lightly-cni/lightly:<package.json version>)
# --base  a registry base instead of the local one, e.g. docker.io/library/debian:bookworm-slim
#         (the Dockerfile then installs the missing tools with apt, so the build needs a network)
# --push  podman push the tag afterwards (log in to your registry first)
# Environment: LIGHTLY_CACHE_DIR (default /var/tmp/lightly-cache) keeps root filesystems by the hash
# of what goes into them, so a rebuild with the same inputs skips mmdebstrap; PODMAN is the podman
# command with its global options (the image test uses `podman --runtime runc`: crun refuses hosts
# with hybrid cgroups).
# Run as root. Prints the image name as its last line.
set -euo pipefail
cd "$(dirname "$0")/.."

tag="ghcr.io/lightly-cni/lightly:$(node -p 'require("./package.json").version')"
base=""
push=""
while [ $# -gt 0 ]; do
  case $1 in
    --tag) tag=$2; shift 2 ;;
    --base) base=$2; shift 2 ;;
    --push) push=1; shift ;;
    *) echo "usage: $0 [--tag IMAGE] [--base IMAGE] [--push]" >&2; exit 2 ;;
  esac
done
read -r -a podman <<< "${PODMAN:-podman}"
cache=${LIGHTLY_CACHE_DIR:-/var/tmp/lightly-cache}
mkdir -p "$cache" dist/image

# Node: this machine's own binary, not Debian's nodejs. Bookworm's is 18, and trixie's 20 is linked
# against libnode, libuv, OpenSSL and ICU as shared libraries: install-cni copies the image's node
# alone onto each host for the plugin's fallback, so it must need nothing beyond glibc and libstdc++
# (the upstream Linux builds are like that).
node_bin=$(readlink -f "$(command -v node)")
major=$("$node_bin" -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then echo "build-image: $node_bin is Node $major; Node 20 or later is needed" >&2; exit 1; fi
if ldd "$node_bin" | grep -Eq 'libnode|libuv|not found'; then
  echo "build-image: $node_bin needs shared libraries (libnode/libuv) that would not be on a host; use an upstream Node build" >&2
  exit 1
fi
cp "$node_bin" dist/image/node.tmp && mv dist/image/node.tmp dist/image/node

npm run build --silent >/dev/null

if [ -z "$base" ]; then
  # Everything the image runs, from Debian; only the three CNI plugins Lightly ships are kept of
  # containernetworking-plugins, and no documentation.
  suite=bookworm
  packages=iproute2,nftables,util-linux,containernetworking-plugins,libstdc++6
  dpkgopts=(
    --dpkgopt='path-exclude=/usr/lib/cni/*'
    --dpkgopt='path-include=/usr/lib/cni/portmap' --dpkgopt='path-include=/usr/lib/cni/bandwidth' --dpkgopt='path-include=/usr/lib/cni/loopback'
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*'
  )
  # Fixed file times: the same package versions give the same tarball.
  export SOURCE_DATE_EPOCH=1700000000
  key=$(printf '%s\n' "$suite" "$packages" "${dpkgopts[@]}" "$SOURCE_DATE_EPOCH" | sha256sum | cut -c1-16)
  rootfs="$cache/rootfs-$key.tar"
  if [ ! -s "$rootfs" ]; then
    command -v mmdebstrap >/dev/null || { echo "build-image: mmdebstrap is missing (apt-get install mmdebstrap)" >&2; exit 1; }
    echo "build-image: building the base root filesystem ($suite: $packages)" >&2
    # No mirror given: mmdebstrap takes Debian's own, with the stable release's updates and security.
    mmdebstrap --quiet --mode=root --variant=minbase --include="$packages" "${dpkgopts[@]}" \
      "$suite" "$rootfs.tmp.tar" >&2
    mv "$rootfs.tmp.tar" "$rootfs"
  fi
  base="localhost/lightly-base:$key"
  if ! "${podman[@]}" image exists "$base"; then
    "${podman[@]}" import --quiet "$rootfs" "$base" >/dev/null
  fi
  # Nothing in the Dockerfile needs a network with this base, and no network means podman leaves
  # the host's interfaces and firewall alone.
  network=(--network=none)
else
  network=()
fi

# Modest limits for the RUN steps: podman's defaults (1048576 open files) cannot be set where the
# builder lacks CAP_SYS_RESOURCE, as in sandboxes and CI containers. The image's own limits are the runtime's.
"${podman[@]}" build --quiet "${network[@]}" --ulimit nofile=4096:4096 --ulimit nproc=4096:4096 --build-arg "BASE=$base" -f deploy/Dockerfile -t "$tag" . >/dev/null
if [ -n "$push" ]; then "${podman[@]}" push "$tag"; fi
echo "$tag"
