#!/usr/bin/env bash
# Build the container image (Dockerfile, unchanged) and check it: `bash scripts/container_test.sh`.
#
# Checks, each an assertion (the script stops at the first failure, exit 1):
#   image      no compiler, pip or pip cache in it, the build's CA not in it, a HEALTHCHECK, its size
#   first run  health answers 200 after training on the embedded sample; the log says so, and says
#              that no user exists yet (as does health); a page renders; the server's processes are
#              not root; the first admin and an API key are created inside the container; a
#              prediction with that key answers (and 401 without it); the HEALTHCHECK passes
#   restart    a new container on the same volume with --read-only (+ tmpfs /tmp) serves the same
#              version without training again, keeps the user, the key and the audit log
#   bad input  a wrong SEGMENTLENS_SPARK_MASTER: one log line, health names it; a volume the
#              server's user cannot write: the container stops with one clear line
#
# Needs podman + buildah (installed through apt when missing and run as root), or a working Docker.
# When containers cannot run on this machine it says why and exits 0 with "SKIPPED" (set
# SEGMENTLENS_CONTAINER_REQUIRED=1 to make that a failure). The debian:bookworm-slim base is built
# locally from Debian's packages with mmdebstrap when it is not present (no image registry needed).
# Runtime flags for restricted sandboxes (cgroupfs, runc, host network, fixed ulimits) are used only
# when a plain `run` fails. Behind a TLS-intercepting proxy, the host's CA bundle is mounted into
# the build for pip (SEGMENTLENS_BUILD_CA, default /etc/ssl/certs/ca-certificates.crt); never copied.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE=docker.io/library/debian:bookworm-slim
IMAGE=${SEGMENTLENS_IMAGE:-localhost/segmentlens:test}
BUILD_CA=${SEGMENTLENS_BUILD_CA:-/etc/ssl/certs/ca-certificates.crt}
TAG=sltest$$
T0=$SECONDS

say() { echo "container_test: $*"; }
fail() { echo "container_test: FAIL: $*" >&2; exit 1; }
skip() {
  if [ "${SEGMENTLENS_CONTAINER_REQUIRED:-0}" = 1 ]; then fail "containers required but: $*"; fi
  echo "container_test: SKIPPED: $* (no container check ran)"; exit 0
}
ok() { say "ok   $*"; }

# ------------------------------------------------------------------ tools
install_tools() {
  command -v apt-get >/dev/null && [ "$(id -u)" = 0 ] || return 1
  say "installing podman, buildah, mmdebstrap, runc, uidmap through apt ..."
  local i
  for i in $(seq 1 30); do  # another apt run may hold the dpkg lock for a while
    if DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman buildah mmdebstrap runc uidmap \
         >/tmp/container_test_apt.$$ 2>&1; then rm -f /tmp/container_test_apt.$$; return 0; fi
    grep -q "Could not get lock\|dpkg frontend lock\|Unable to acquire" /tmp/container_test_apt.$$ || {
      apt-get update -qq >/dev/null 2>&1 || true
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman buildah mmdebstrap runc uidmap \
        >/tmp/container_test_apt.$$ 2>&1 && { rm -f /tmp/container_test_apt.$$; return 0; }
      tail -3 /tmp/container_test_apt.$$ >&2; rm -f /tmp/container_test_apt.$$; return 1; }
    sleep 10
  done
  return 1
}

ENGINE=""
if command -v podman >/dev/null && command -v buildah >/dev/null; then ENGINE=podman
elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then ENGINE=docker
elif install_tools; then ENGINE=podman
else skip "neither podman+buildah nor a running Docker engine, and they cannot be installed here (apt as root)"
fi

# ------------------------------------------------------------------ base image
if ! $ENGINE image inspect "$BASE" >/dev/null 2>&1; then
  if [ "$ENGINE" = docker ] && docker pull -q "$BASE" >/dev/null 2>&1; then :
  else
    command -v mmdebstrap >/dev/null || install_tools || skip "no $BASE image and no mmdebstrap to build it"
    say "building $BASE locally from Debian's packages (mmdebstrap) ..."
    work=$(mktemp -d)
    # Like the official slim image: no documentation, manual pages or translations.
    mmdebstrap --quiet --variant=minbase \
      --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
      --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
      --dpkgopt='path-exclude=/usr/share/locale/*' \
      bookworm "$work/rootfs.tar" || { rm -rf "$work"; skip "mmdebstrap could not build the base image"; }
    $ENGINE import -q "$work/rootfs.tar" "$BASE" >/dev/null
    rm -rf "$work"
  fi
fi
say "base image ready ($((SECONDS - T0)) s)"

# ------------------------------------------------------------------ how containers run here
GLOBAL=()
RUNFLAGS=()
NET=publish
probe() { $ENGINE "${GLOBAL[@]}" run --rm "${RUNFLAGS[@]}" "$BASE" true >/dev/null 2>&1; }
if ! probe; then
  if [ "$ENGINE" = podman ]; then
    # Sandboxes with hybrid cgroups that refuse raising limits (rlimits, cgroup v1, no netns).
    GLOBAL=(--cgroup-manager=cgroupfs)
    RUNFLAGS=(--runtime runc --network=host --ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
    NET=host
  fi
  probe || skip "$ENGINE cannot run a container on this machine: $($ENGINE "${GLOBAL[@]}" run --rm "${RUNFLAGS[@]}" "$BASE" true 2>&1 | tail -1)"
  say "this machine needs: $ENGINE ${GLOBAL[*]} run ${RUNFLAGS[*]}"
fi
ctr() { $ENGINE "${GLOBAL[@]}" "$@"; }

# ------------------------------------------------------------------ build
say "building $IMAGE from the Dockerfile ..."
tb=$SECONDS
BUILD_LOG=$(mktemp)
if [ "$ENGINE" = podman ]; then
  # The CA is mounted only while the build stage (where pip runs) is built: buildah leaves an empty
  # file where it mounted one, and the final stage, built next from the cached build stage, must
  # not have even that. (A volume is not part of the layer cache key; the build argument is.)
  BUILD=(buildah bud --isolation chroot --format docker --layers -q)
  CA_ARGS=()
  [ -f "$BUILD_CA" ] && CA_ARGS=(--build-arg PIP_CERT=/tmp/build-ca.crt)
  [ -f "$BUILD_CA" ] && CA_MOUNT=(-v "$BUILD_CA:/tmp/build-ca.crt:ro") || CA_MOUNT=()
  "${BUILD[@]}" "${CA_MOUNT[@]}" "${CA_ARGS[@]}" --target build -t "$IMAGE-build" . >"$BUILD_LOG" 2>&1 \
    || { tail -30 "$BUILD_LOG" >&2; fail "the image's build stage does not build (buildah bud --target build)"; }
  "${BUILD[@]}" "${CA_ARGS[@]}" -t "$IMAGE" . >"$BUILD_LOG" 2>&1 \
    || { tail -30 "$BUILD_LOG" >&2; fail "the image does not build (buildah bud)"; }
else
  docker build -q -t "$IMAGE" . >"$BUILD_LOG" 2>&1 || { tail -30 "$BUILD_LOG" >&2; fail "the image does not build"; }
fi
rm -f "$BUILD_LOG"
size=$(ctr image inspect --format '{{.Size}}' "$IMAGE")
ok "image built in $((SECONDS - tb)) s; size $((size / 1000000)) MB"

# ------------------------------------------------------------------ cleanup
VOL=$TAG-data
BADDIR=$(mktemp -d)
LOG=$(mktemp)
cleanup() {
  local c
  for c in "$TAG-1" "$TAG-2" "$TAG-3"; do ctr rm -f -t 2 "$c" >/dev/null 2>&1 || true; done
  ctr volume rm -f "$VOL" >/dev/null 2>&1 || true
  rm -rf "$BADDIR" "$LOG"
}
trap cleanup EXIT

# ------------------------------------------------------------------ the image
found=$(ctr run --rm "${RUNFLAGS[@]}" --entrypoint sh "$IMAGE" -c \
  'for t in gcc cc c++ g++ make ld pip pip3; do command -v $t; done;
   ls -d /root/.cache /var/lib/segmentlens/.cache /var/cache/apt/archives/*.deb /var/lib/apt/lists/*_Packages \
     /tmp/build-ca.crt 2>/dev/null; find / -xdev -name "*.whl" 2>/dev/null | head -3; echo END' 2>"$LOG" || true)
[ "$found" = END ] || fail "the image holds build tools or caches (or does not run): $found $(tail -3 "$LOG")"
ok "no compiler, pip, pip or apt cache, wheel or build CA in the image"
hc=$(ctr image inspect --format '{{.Config.Healthcheck}}' "$IMAGE" 2>/dev/null || true)
case "$hc" in *api/v1/health*) ok "HEALTHCHECK on /api/v1/health" ;; *) fail "no HEALTHCHECK on /api/v1/health: $hc" ;; esac

# ------------------------------------------------------------------ running it
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
start() {  # start NAME [run options...]: detached, the volume mounted, reachable on 127.0.0.1:$PORT
  local name=$1; shift
  PORT=$(free_port)
  local net=(-p "127.0.0.1:$PORT:8050") err
  [ "$NET" = host ] && net=(-e PORT="$PORT")
  # Without systemd podman says on stderr that it cannot schedule the HEALTHCHECK: shown only on failure.
  err=$(ctr run -d --name "$name" "${RUNFLAGS[@]}" "${net[@]}" "$@" "$IMAGE" 2>&1 >/dev/null) \
    || fail "$name does not start: $err"
}
# http METHOD PATH [BODY] [HEADER...] -> prints "STATUS BODY"; never fails.
http() {
  python3 - "$PORT" "$@" <<'PY'
import sys, urllib.request, urllib.error
port, method, path, *rest = sys.argv[1:]
body = rest.pop(0).encode() if rest and not rest[0].startswith("H:") else None
req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method)
if body is not None:
    req.add_header("Content-Type", "application/json")
for h in rest:
    k, _, v = h[2:].partition(": ")
    req.add_header(k, v)
class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):
        return None
try:
    with urllib.request.build_opener(NoRedirect).open(req, timeout=20) as r:
        print(r.status, r.read().decode(errors="replace"))
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode(errors="replace"))
except Exception as e:
    print(0, type(e).__name__, e)
PY
}
wait_healthy() {  # wait_healthy NAME SECONDS
  local name=$1 limit=$2 t=$SECONDS out
  while [ $((SECONDS - t)) -lt "$limit" ]; do
    out=$(http GET /api/v1/health)
    [ "${out%% *}" = 200 ] && { echo "$out"; return 0; }
    [ "$(ctr inspect --format '{{.State.Running}}' "$name" 2>/dev/null)" = true ] || break
    sleep 2
  done
  ctr logs "$name" 2>&1 | tail -20 >&2
  fail "$name: health did not answer 200 within ${limit}s (last: ${out:-none})"
}
json() { python3 -c "import json,sys; d=json.loads(sys.stdin.read().split(' ',1)[1]); print($1)"; }

# -------------------------------- first run: a new volume, trains on the sample
ctr volume create "$VOL" >/dev/null
start "$TAG-1" -v "$VOL:/var/lib/segmentlens"
t=$SECONDS
health=$(wait_healthy "$TAG-1" 240)
version=$(echo "$health" | json 'd["model_version"]')
[ -n "$version" ] && [ "$version" != None ] || fail "health names no model version: $health"
ok "first start: health 200 after $((SECONDS - t)) s, serving $version"
logs=$(ctr logs "$TAG-1" 2>&1)
grep -q "no model yet; training the first one on synthetic_customers.tsv" <<<"$logs" \
  || fail "the first start's log does not say it trains on the sample"
grep -q "no user yet" <<<"$logs" || fail "the log does not say that no user exists yet"
echo "$health" | json '"\n".join(d.get("setup_warnings", []))' | grep -q "no user yet" \
  || fail "health does not say that no user exists yet: $health"
ok "the log and health say: no user yet"

page=$(http GET /)
[ "${page%% *}" = 200 ] && grep -q "<title>SegmentLens</title>" <<<"$page" && grep -q "_dash-config" <<<"$page" \
  || fail "GET / does not render the dashboard: ${page:0:200}"
ok "a page renders (GET / 200, the Dash app)"

uids=$(ctr exec "$TAG-1" sh -c 'for p in /proc/[0-9]*; do awk "/^Uid:/ {print \$2}" $p/status 2>/dev/null; done' | sort -u | tr '\n' ' ')
[ "$uids" = "10001 " ] || fail "processes run as user ids: $uids (expected only 10001)"
pid1=$(ctr exec "$TAG-1" cat /proc/1/cmdline | tr '\0' ' ')
case "$pid1" in *gunicorn*app:server*gunicorn.conf.py*) ;; *) fail "PID 1 is not the Procfile's gunicorn: $pid1" ;; esac
ok "every process runs as uid 10001 (not root); PID 1: $pid1"

printf 'container-test-pw-1\n' | ctr exec -i "$TAG-1" python -m core users add admin --role admin --password-stdin \
  >/dev/null || fail "creating the first admin inside the container failed"
key=$(ctr exec "$TAG-1" python -m core apikeys create --name ci --role viewer 2>/dev/null)
case "$key" in slk_*) ;; *) fail "no API key printed: $key" ;; esac
ok "first admin and an API key created with python -m core inside the container"

CUSTOMER='{"ID": 7, "Age": 52, "Income": 58000, "Total_Spending": 640, "NumWebPurchases": 4, "NumStorePurchases": 6, "NumWebVisitsMonth": 5, "Recency": 41}'
pred=$(http POST /api/v1/predict "$CUSTOMER" "H:Authorization: Bearer $key")
[ "${pred%% *}" = 200 ] || fail "prediction with the key: $pred"
segment=$(echo "$pred" | json 'd["predictions"][0]["segment"]')
served=$(echo "$pred" | json 'd["model_version"]')
[ "$served" = "$version" ] || fail "the prediction names model $served, expected $version: $pred"
denied=$(http POST /api/v1/predict "$CUSTOMER")
[ "${denied%% *}" = 401 ] || fail "a prediction without the key answered ${denied:0:120} (expected 401)"
ok "prediction with the API key: 200, segment $segment of $version; without it: 401"
page=$(http GET /)
[ "${page%% *}" = 302 ] || fail "with a user, GET / should redirect to the sign-in: ${page:0:120}"
ok "with a user, the dashboard needs a sign-in (GET / 302)"

if [ "$ENGINE" = podman ]; then
  ctr healthcheck run "$TAG-1" >/dev/null || fail "the image's HEALTHCHECK fails in a healthy container"
  ok "the image's HEALTHCHECK passes (podman healthcheck run)"
fi
ctr stop -t 20 "$TAG-1" >/dev/null 2>&1
ctr rm "$TAG-1" >/dev/null 2>&1

# -------------------------------- restart: a new container, same volume, read-only root, bad Spark master
start "$TAG-2" -v "$VOL:/var/lib/segmentlens" --read-only --tmpfs /tmp \
  -e SEGMENTLENS_SPARK_MASTER=spark://127.0.0.1:1
t=$SECONDS
health=$(wait_healthy "$TAG-2" 180)
again=$(echo "$health" | json 'd["model_version"]')
[ "$again" = "$version" ] || fail "after the restart health serves $again, expected $version"
logs=$(ctr logs "$TAG-2" 2>&1)
! grep -q "no model yet" <<<"$logs" || fail "the restart trained again instead of using the volume's model"
ok "restart with --read-only --tmpfs /tmp: health 200 after $((SECONDS - t)) s, same version $again, no training"
users=$(ctr exec "$TAG-2" python -m core users list --json)
grep -q '"admin"' <<<"$users" || fail "the admin is gone after the restart: $users"
pred=$(http POST /api/v1/predict "$CUSTOMER" "H:Authorization: Bearer $key")
[ "${pred%% *}" = 200 ] && [ "$(echo "$pred" | json 'd["predictions"][0]["segment"]')" = "$segment" ] \
  || fail "the key or the prediction changed after the restart: $pred"
audit=$(ctr exec "$TAG-2" python -m core audit --limit 50)
grep -q "key-create" <<<"$audit" || fail "the audit log lost the key creation: $audit"
ok "the user, the API key (same segment) and the audit log survive the restart"
ctr exec "$TAG-2" sh -c 'touch /app/x 2>/dev/null || touch /usr/x 2>/dev/null' && fail "the root filesystem is writable"
ok "the root filesystem is read-only"

line=$(grep -c "SEGMENTLENS_SPARK_MASTER\|Spark master" <<<"$logs" || true)
[ "$line" = 1 ] || fail "expected one log line about SEGMENTLENS_SPARK_MASTER, found $line: $logs"
echo "$health" | json '"\n".join(d.get("setup_warnings", []))' | grep -q "SEGMENTLENS_SPARK_MASTER\|Spark master spark://127.0.0.1:1" \
  || fail "health does not say what is wrong with SEGMENTLENS_SPARK_MASTER: $health"
ok "a wrong SEGMENTLENS_SPARK_MASTER: one log line, and health says: $(echo "$health" | json 'd["setup_warnings"][0]' | cut -c1-90)..."
ctr stop -t 20 "$TAG-2" >/dev/null 2>&1

# -------------------------------- a volume the server's user cannot write
chmod 0755 "$BADDIR"  # owned by the user running this script, not by the image's uid 10001
start "$TAG-3" -v "$BADDIR:/var/lib/segmentlens"
code=$(ctr wait "$TAG-3" 2>/dev/null | tail -1)
logs=$(ctr logs "$TAG-3" 2>&1)
[ "$code" != 0 ] || fail "the server started on a volume it cannot write"
grep -q "SegmentLens cannot start: /var/lib/segmentlens/models is not writable by user id 10001" <<<"$logs" \
  || fail "no clear line about the unwritable volume: $logs"
! grep -q "Traceback" <<<"$logs" || fail "the unwritable volume gives a traceback: $logs"
ok "an unwritable volume: the container stops (exit $code) with: $(grep "cannot start" <<<"$logs" | cut -c1-100)..."

say "all checks passed in $((SECONDS - T0)) s ($ENGINE; image $((size / 1000000)) MB)"
