#!/usr/bin/env bash
# docker/check.sh: build the igrog recon-server image (docker/Dockerfile) with
# rootful podman on a machine without a Docker daemon or a reachable image
# registry, then grid the embedded sample inside the container and check the
# output.
#
#   sudo docker/check.sh [--rebuild-base] [--keep] [--no-install]
#
# What it does:
#   1. installs podman, buildah, runc and debootstrap with apt-get if missing
#      (--no-install: fail instead);
#   2. makes a local Debian base image with `debootstrap --variant=minbase
#      bookworm` from the host's configured Debian mirror and `podman import`
#      (cached as $BASE_TAG; --rebuild-base makes it again);
#   3. builds docker/Dockerfile FROM that base (python3 from Debian's packages)
#      in a temporary build context whose docker/buildenv/ holds the host's CA
#      bundle, pip and apt configuration and, when the host has one, a CPU
#      torch wheel (host-only wheel folders are not visible inside a build);
#   4. runs `igrog replay --set training.max_steps=400 --png ...` of the
#      embedded sample in the image and checks the Cartesian ISMRMRD file and
#      the PNG it wrote; if the image's `igrog serve` exists, it also starts the
#      server container and runs its health check.
#
# podman runs with runc and the cgroupfs cgroup manager (crun fails on hybrid
# cgroup hosts), with nofile/nproc ulimits no higher than the host's.
# Environment: BASE_TAG, IMAGE_TAG, TORCH_VERSION (2.13.0), DEBIAN_SUITE
# (bookworm), DEBIAN_MIRROR (default: from the host's apt sources), NICE
# ("nice -n 19 ionice -c3"), PODMAN_NETWORK (host, for the build).
set -euo pipefail

t_start=$(date +%s)
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"

BASE_TAG="${BASE_TAG:-localhost/igrog-debian-base:bookworm}"
IMAGE_TAG="${IMAGE_TAG:-localhost/igrog-gadget:check}"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
DEBIAN_SUITE="${DEBIAN_SUITE:-bookworm}"
PODMAN_NETWORK="${PODMAN_NETWORK:-host}"
NICE="${NICE:-nice -n 19 ionice -c3}"
rebuild_base=0
keep=0
install=1
for arg in "$@"; do
    case "$arg" in
        --rebuild-base) rebuild_base=1 ;;
        --keep) keep=1 ;;
        --no-install) install=0 ;;
        -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
        *) echo "check.sh: unknown argument $arg" >&2; exit 2 ;;
    esac
done

log() { printf '[check.sh %4ss] %s\n' "$(( $(date +%s) - t_start ))" "$*"; }
die() { printf '[check.sh] FAILED: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (rootful podman, debootstrap)"

# ------------------------------------------------------------------ 1. tools
missing=()
for tool in podman buildah runc debootstrap; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
    [ "$install" = 1 ] || die "missing: ${missing[*]}"
    log "installing podman buildah runc debootstrap (missing: ${missing[*]})"
    DEBIAN_FRONTEND=noninteractive apt-get install -y podman buildah runc debootstrap \
        || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y podman buildah runc debootstrap; }
fi

# podman configuration for this script only: runc, cgroupfs, ulimits <= host
host_nofile="$(ulimit -Hn)"; [ "$host_nofile" = unlimited ] && host_nofile=1048576
host_nproc="$(ulimit -Hu)"; [ "$host_nproc" = unlimited ] && host_nproc=32768
nofile=$(( host_nofile < 1048576 ? host_nofile : 1048576 ))
nproc=$(( host_nproc < 32768 ? host_nproc : 32768 ))
work="$(mktemp -d /tmp/igrog-check.XXXXXX)"
cleanup() {
    if [ -n "${server_ctr:-}" ]; then "${podman[@]}" rm -f "$server_ctr" >/dev/null 2>&1 || true; fi
    if [ "$keep" = 0 ]; then rm -rf "$work"; else log "kept $work"; fi
}
trap cleanup EXIT
cat > "$work/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=${nproc}:${nproc}"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
export CONTAINERS_CONF="$work/containers.conf"
ulimits=(--ulimit "nofile=${nofile}:${nofile}" --ulimit "nproc=${nproc}:${nproc}")
podman=(podman --runtime runc --cgroup-manager cgroupfs)
log "podman $("${podman[@]}" version --format '{{.Client.Version}}'), runtime runc, cgroupfs, nofile=$nofile nproc=$nproc"

# -------------------------------------------------------------- 2. base image
debian_mirror() {
    # first Debian (non-security) URI of the host's apt sources
    local f uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        uri="$(awk '/^URIs:/ {for (i = 2; i <= NF; i++) print $i}' "$f" | grep -v -- '-security' | grep -i debian | head -n1)"
        [ -n "$uri" ] && { echo "$uri"; return; }
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        uri="$(awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /^(https?|ftp|file):/) {print $i; break}}' "$f" \
            | grep -v -- '-security' | grep -i debian | head -n1)"
        [ -n "$uri" ] && { echo "$uri"; return; }
    done
    echo "http://deb.debian.org/debian"
}
DEBIAN_MIRROR="${DEBIAN_MIRROR:-$(debian_mirror)}"

if [ "$rebuild_base" = 1 ] || ! "${podman[@]}" image exists "$BASE_TAG"; then
    log "debootstrap --variant=minbase $DEBIAN_SUITE from $DEBIAN_MIRROR"
    rootfs="$work/rootfs"
    $NICE debootstrap --variant=minbase --include=ca-certificates "$DEBIAN_SUITE" "$rootfs" "$DEBIAN_MIRROR" \
        > "$work/debootstrap.log" 2>&1 || { tail -n 30 "$work/debootstrap.log" >&2; die "debootstrap"; }
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    log "podman import -> $BASE_TAG"
    tar -C "$rootfs" -c . | "${podman[@]}" import --change 'CMD ["/bin/bash"]' - "$BASE_TAG" >/dev/null
    rm -rf "$rootfs"
else
    log "base image $BASE_TAG exists (--rebuild-base to make it again)"
fi

# ------------------------------------------------------------ 3. build context
ctx="$work/context"
mkdir -p "$ctx/docker"
log "build context $ctx"
cp "$repo/pyproject.toml" "$ctx/"
for f in "$repo"/README*; do [ -f "$f" ] && cp "$f" "$ctx/"; done
for d in engine igrog_gadget; do
    tar -C "$repo" --exclude='__pycache__' --exclude='*.pyc' --exclude='*.egg-info' -c "$d" | tar -C "$ctx" -x
done
cp "$here/Dockerfile" "$ctx/docker/"
cp -r "$here/scripts" "$ctx/docker/"
benv="$ctx/docker/buildenv"
mkdir -p "$benv"

# CA bundle
for ca in "${PIP_CERT:-}" "${SSL_CERT_FILE:-}" "${REQUESTS_CA_BUNDLE:-}" /etc/ssl/certs/ca-certificates.crt; do
    if [ -n "$ca" ] && [ -f "$ca" ]; then cp "$ca" "$benv/ca-certificates.crt"; log "CA bundle: $ca"; break; fi
done

# pip configuration: merge the host's files (same precedence as pip), drop
# everything that points at host-only paths (find-links, file:// indexes),
# collect constraints files, remember where local wheels lie.
python3 - "$benv" <<'PY'
import configparser, os, sys, shutil, pathlib
benv = pathlib.Path(sys.argv[1])
files = ["/etc/pip.conf", "/etc/xdg/pip/pip.conf"]
files += [os.path.join(d, "pip", "pip.conf") for d in os.environ.get("XDG_CONFIG_DIRS", "").split(":") if d]
home = os.path.expanduser("~")
files += [os.path.join(home, ".pip", "pip.conf"), os.path.join(home, ".config", "pip", "pip.conf")]
if os.environ.get("PIP_CONFIG_FILE"):
    files.append(os.environ["PIP_CONFIG_FILE"])
merged = configparser.RawConfigParser()
constraints, wheel_dirs, used = [], [], []
local = lambda v: v.startswith("file:") or v.startswith("/") or v.startswith(".")
for f in dict.fromkeys(files):
    if not os.path.isfile(f):
        continue
    cp = configparser.RawConfigParser()
    try:
        cp.read(f)
    except configparser.Error as e:
        print(f"  pip config {f}: unreadable ({e}), skipped")
        continue
    used.append(f)
    for sec in cp.sections():
        for key, value in cp.items(sec):
            k = key.replace("_", "-")
            vals = value.split()
            if k in ("constraint", "constraints"):
                constraints += vals
                continue
            if k in ("cert", "client-cert"):
                continue  # replaced by the copied CA bundle
            if k in ("find-links",):
                wheel_dirs += [v for v in vals if local(v)]
            keep = [v for v in vals if not local(v)]
            if not keep:
                continue  # host-only path or file:// index
            if not merged.has_section(sec):
                merged.add_section(sec)
            merged.set(sec, key, " ".join(keep))
env = os.environ
constraints += env.get("PIP_CONSTRAINT", "").split()
wheel_dirs += [v for v in env.get("PIP_FIND_LINKS", "").split() if local(v)]
for k in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST", "PIP_DEFAULT_TIMEOUT", "PIP_RETRIES"):
    vals = [v for v in env.get(k, "").split() if not local(v)]
    if vals:
        key = k[4:].lower().replace("_", "-")
        if not merged.has_section("global"):
            merged.add_section("global")
        merged.set("global", key, " ".join(vals))
with open(benv / "pip.conf", "w") as fh:
    merged.write(fh)
text = []
for c in dict.fromkeys(constraints):
    c = c[len("file://"):] if c.startswith("file://") else c
    if os.path.isfile(c):
        text.append(f"# from {c}\n" + open(c).read())
if text:
    (benv / "pip-constraints.txt").write_text("\n".join(text))
(benv / ".wheel-dirs").write_text("".join(f"{d}\n" for d in dict.fromkeys(
    d[len("file://"):] if d.startswith("file://") else d for d in wheel_dirs)))
print("  pip config from:", ", ".join(used) or "(none)")
print("  pip.conf for the build:", " | ".join(l.strip() for l in open(benv / "pip.conf") if l.strip()) or "(empty)")
print("  constraints:", ", ".join(dict.fromkeys(constraints)) or "(none)")
PY

# a CPU torch wheel for the image's python (Debian bookworm: cp311) from the
# host's local wheel folders, so the build needs no PyTorch index
pytag="${PYTAG:-cp311}"
torch_spec="torch==${TORCH_VERSION}"
torch_index="https://download.pytorch.org/whl/cpu"
torch_wheel=""
while IFS= read -r d; do
    [ -n "$d" ] && [ -d "$d" ] || continue
    torch_wheel="$(find "$d" -maxdepth 3 -name "torch-${TORCH_VERSION}+cpu-${pytag}-${pytag}-*linux*x86_64.whl" 2>/dev/null | head -n1)"
    [ -n "$torch_wheel" ] && break
done < <(cat "$benv/.wheel-dirs"; echo /opt/wheels)
rm -f "$benv/.wheel-dirs"
if [ -n "$torch_wheel" ]; then
    mkdir -p "$benv/wheels"
    cp "$torch_wheel" "$benv/wheels/"
    torch_spec="torch==${TORCH_VERSION}+cpu"
    torch_index=""
    log "CPU torch wheel: $torch_wheel"
elif curl -fsS -m 10 -o /dev/null "$torch_index/" 2>/dev/null; then
    log "CPU torch from $torch_index"
else
    log "WARNING: no local CPU torch wheel and $torch_index unreachable: torch $TORCH_VERSION from the default index (large)"
    torch_index=""
fi

# apt configuration: the host's Debian sources and network settings
mkdir -p "$benv/apt/sources.list.d" "$benv/apt/apt.conf.d"
is_debian_source() { # every URI of the file is a Debian archive
    local uris
    uris="$(grep -hoE '(https?|ftp)://[^ ]+' "$1" | sort -u)"
    [ -n "$uris" ] && ! grep -qviE 'debian' <<<"$uris"
}
if [ -f /etc/apt/sources.list ] && grep -qE '^[[:space:]]*deb ' /etc/apt/sources.list && is_debian_source /etc/apt/sources.list; then
    cp /etc/apt/sources.list "$benv/apt/sources.list"
fi
for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && is_debian_source "$f" && cp "$f" "$benv/apt/sources.list.d/"
done
for f in /etc/apt/apt.conf.d/*; do
    [ -f "$f" ] && grep -qE 'Acquire::.*(Proxy|proxy|Check-Valid-Until|Check-Date|CaInfo|Retries)' "$f" \
        && cp "$f" "$benv/apt/apt.conf.d/"
done
log "apt config: $(cd "$benv/apt" && find . -type f | sed 's#^\./##' | tr '\n' ' ')"

# ---------------------------------------------------------------- build image
log "podman build -f docker/Dockerfile (BASE_IMAGE=$BASE_TAG, TORCH_SPEC=$torch_spec, TORCH_INDEX_URL=${torch_index:-<default index>})"
t_build=$(date +%s)
if ! $NICE "${podman[@]}" build \
        --pull=never --format docker --network "$PODMAN_NETWORK" "${ulimits[@]}" \
        --build-arg BASE_IMAGE="$BASE_TAG" \
        --build-arg TORCH_SPEC="$torch_spec" \
        --build-arg TORCH_INDEX_URL="$torch_index" \
        -f "$ctx/docker/Dockerfile" -t "$IMAGE_TAG" "$ctx" > "$work/build.log" 2>&1; then
    tail -n 40 "$work/build.log" >&2
    cp "$work/build.log" /tmp/igrog-check-build.log
    die "podman build (full log: /tmp/igrog-check-build.log)"
fi
cp "$work/build.log" /tmp/igrog-check-build.log
grep -E 'base-setup:|igrog_gadget OK' "$work/build.log" | sed 's/^/    /' || true
log "image built in $(( $(date +%s) - t_build ))s: $IMAGE_TAG ($("${podman[@]}" image inspect "$IMAGE_TAG" --format '{{.Size}}' | awk '{printf "%.0f MB", $1/1e6}'))"

# ------------------------------------------------------------ 4. replay inside
out="$work/out"
mkdir -p "$out"
chmod 0777 "$out"
cat > "$out/verify.py" <<'PY'
import sys
import numpy as np
import ismrmrd
ds = ismrmrd.Dataset(sys.argv[1], "/dataset", create_if_needed=False)
n = ds.number_of_acquisitions()
hdr = ismrmrd.xsd.CreateFromDocument(ds.read_xml_header())
enc = hdr.encoding[0]
traj = getattr(enc.trajectory, "value", enc.trajectory)
a = ds.read_acquisition(0)
ok = all(np.isfinite(ds.read_acquisition(i).data).all() for i in range(n))
print(f"OUT acquisitions={n} trajectory={traj} matrix={enc.encodedSpace.matrixSize.x}x{enc.encodedSpace.matrixSize.y} "
      f"first={a.data.shape} {a.data.dtype} all_finite={ok}")
assert n > 0 and ok
PY
log "podman run: igrog replay --set training.max_steps=400 --png /out/sample.png (embedded sample)"
t_run=$(date +%s)
if ! "${podman[@]}" run --rm --network none --no-healthcheck "${ulimits[@]}" -v "$out:/out" -w /out \
        --entrypoint sh "$IMAGE_TAG" -c '
            set -e
            id
            igrog replay --set training.max_steps=400 --png /out/sample.png
            ls -l /out
            python3 /out/verify.py /out/sample_radial_cartesian.h5
        ' > "$work/run.log" 2>&1; then
    tail -n 40 "$work/run.log" >&2
    die "replay inside the container"
fi
sed 's/^/    /' "$work/run.log" | grep -vE '^\s*$' | tail -n 20
log "replay container ran in $(( $(date +%s) - t_run ))s"
[ -s "$out/sample_radial_cartesian.h5" ] || die "no /out/sample_radial_cartesian.h5"
[ -s "$out/sample.png" ] || die "no /out/sample.png"
[ "$(head -c 8 "$out/sample.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || die "sample.png is not a PNG"
grep -q '^OUT acquisitions=' "$work/run.log" || die "output file not readable"
if [ "$keep" = 1 ]; then cp "$out/sample.png" /tmp/igrog-check-sample.png; log "PNG copied to /tmp/igrog-check-sample.png"; fi

# ------------------------------------------------ 5. server + health check
if "${podman[@]}" run --rm --network none --no-healthcheck --entrypoint igrog "$IMAGE_TAG" serve --help >/dev/null 2>&1; then
    server_ctr="igrog-check-serve-$$"
    log "igrog serve: starting the server container and its health check"
    # no systemd here: the health check's timer is disabled and the check is run by hand
    # (--network none: the check connects from inside the container's own
    # namespace; no host port, no clash with servers on the host)
    "${podman[@]}" run -d --name "$server_ctr" "${ulimits[@]}" --network none \
        --health-interval disable "$IMAGE_TAG" > /dev/null 2> "$work/serve-run.err" \
        || { cat "$work/serve-run.err" >&2; die "podman run (server)"; }
    healthy=0
    for _ in $(seq 1 30); do
        sleep 1
        if "${podman[@]}" healthcheck run "$server_ctr" >/dev/null 2>&1; then healthy=1; break; fi
    done
    if [ "$healthy" = 1 ]; then
        log "health check: healthy"
    else
        "${podman[@]}" logs "$server_ctr" 2>&1 | tail -n 20 >&2
        die "server container never became healthy"
    fi
    # stream the embedded sample through the server as a Gadgetron peer would
    # (skipped when the image's package has no igrog_gadget.gadget.client)
    cat > "$work/stream.py" <<'PY'
import sys, time
try:
    from igrog_gadget.cli import SAMPLE_FILE
    from igrog_gadget.gadget import protocol
    from igrog_gadget.gadget.client import StreamClient, configuration_xml, dataset_messages
    from igrog_gadget.io import read_dataset
except (ImportError, AttributeError) as error:
    print(f"SKIP no streaming client in this package ({error})")
    sys.exit(0)
dataset = read_dataset(SAMPLE_FILE)
t0 = time.perf_counter()
with StreamClient.connect("127.0.0.1", 9002) as client:
    client.send_handshake(configuration_xml({"output": "images", "set": "training.max_steps=400"}), dataset.header_xml)
    for message in dataset_messages(dataset):
        client.send(message)
    client.send_close()
    received = client.wait_closed(timeout_s=180)
images = received.of(protocol.IMAGE)
print(f"STREAM {len(dataset.readouts)} acquisitions sent, {len(images)} image(s) back, "
      f"closed={received.closed} error={received.error} in {time.perf_counter() - t0:.1f} s")
sys.exit(0 if received.closed and images else 1)
PY
    if "${podman[@]}" exec -i "$server_ctr" python3 - < "$work/stream.py" > "$work/stream.log" 2>&1; then
        sed 's/^/    /' "$work/stream.log" | grep -E 'STREAM|SKIP' || true
    else
        cat "$work/stream.log" >&2
        "${podman[@]}" logs "$server_ctr" 2>&1 | tail -n 30 >&2
        die "streaming the sample through igrog serve in the container"
    fi
    "${podman[@]}" rm -f "$server_ctr" >/dev/null 2>&1 || true
    server_ctr=""
else
    log "igrog serve not in this image yet: server/health-check step skipped"
fi

log "PASSED in $(( $(date +%s) - t_start ))s"
