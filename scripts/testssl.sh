#!/usr/bin/env bash
# Runs Debian's testssl.sh (`apt-get install testssl.sh`) against a tcp_chat node's TLS and
# fails on any finding of severity HIGH or CRITICAL (docs/tls.md).
#
#   scripts/testssl.sh                    # starts a node with a throw-away CA and certificate
#   scripts/testssl.sh HOST:PORT          # checks a running node instead
#
# Env: TCP_CHAT_BIN (default: the debug build), TESTSSL (default: testssl or testssl.sh on PATH),
# TESTSSL_ARGS (extra arguments, e.g. "--fast"). Prints the summary of every finding at
# MEDIUM or above, then OK or FAILED. Exit 0 when nothing is HIGH or CRITICAL.
set -euo pipefail
cd "$(dirname "$0")/.."

TESTSSL="${TESTSSL:-$(command -v testssl || command -v testssl.sh || true)}"
[ -n "$TESTSSL" ] || { echo "testssl.sh not found: apt-get install testssl.sh" >&2; exit 2; }
BIN="${TCP_CHAT_BIN:-$(swift build --show-bin-path 2>/dev/null)/tcp_chat}"
work="$(mktemp -d)"
node=""
cleanup() { [ -n "$node" ] && kill "$node" 2>/dev/null && wait "$node" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

target="${1:-}"
own_cert=""
if [ -z "$target" ]; then
    own_cert=1
    # The commands of docs/tls.md, "Make a cluster CA and node certificates".
    (
        cd "$work"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem \
            -days 3650 -subj "/CN=testssl CA" -addext basicConstraints=critical,CA:TRUE \
            -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out node.key
        openssl req -new -key node.key -out node.csr -subj "/CN=localhost"
        printf 'basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' > node.ext
        openssl x509 -req -in node.csr -CA ca.pem -CAkey ca.key -set_serial 1 -days 365 -extfile node.ext -out node.pem 2>/dev/null
    )
    "$BIN" server -a 127.0.0.1 -p 0 --tls-cert "$work/node.pem" --tls-key "$work/node.key" --tls-ca "$work/ca.pem" \
        --log-level warning > "$work/node.out" 2> "$work/node.err" &
    node=$!
    for _ in $(seq 100); do grep -q "listening on" "$work/node.out" 2>/dev/null && break; sleep 0.1; done
    target="$(sed -n 's/^listening on //p' "$work/node.out")"
    [ -n "$target" ] || { echo "the node did not start:" >&2; cat "$work/node.err" >&2; exit 2; }
fi

echo "testssl.sh against $target"
# --warnings off: no prompts; the JSON findings carry a severity each. With our own
# throw-away certificate, testssl.sh is told to trust its CA (as a cluster's clients are).
extra=()
[ -n "$own_cert" ] && extra+=(--add-ca "$work/ca.pem")
# shellcheck disable=SC2086
"$TESTSSL" --quiet --warnings off --color 0 --jsonfile "$work/findings.json" "${extra[@]}" ${TESTSSL_ARGS:-} "$target" \
    > "$work/testssl.out" 2>&1 || true
[ -s "$work/findings.json" ] || { echo "testssl.sh produced no findings file:" >&2; tail -30 "$work/testssl.out" >&2; exit 2; }

python3 - "$work/findings.json" "$own_cert" <<'PY'
import json, sys
findings = json.load(open(sys.argv[1]))
# A throw-away certificate of a private CA has no CRL or OCSP URI: that is the PKI's
# business, not the node's TLS, so it is shown but does not fail the run made with it.
if sys.argv[2]:
    for f in findings:
        if f.get("id") == "cert_revocation" and f.get("severity") in ("HIGH", "CRITICAL"):
            print(f"  (not counted: {f['id']}: {f['finding']} -- the throw-away test CA publishes no CRL/OCSP)")
            f["severity"] = "NOTE"
for id_ in ("SSLv2", "SSLv3", "TLS1", "TLS1_1", "TLS1_2", "TLS1_3", "cipherorder_TLSv1_2", "cipherorder_TLSv1_3",
            "FS", "secure_renego", "secure_client_renego", "CRIME_TLS"):
    for f in findings:
        if f.get("id") == id_:
            print(f"  {id_:22} {f['severity']:8} {f['finding']}")
order = ["CRITICAL", "HIGH", "MEDIUM", "LOW", "WARN", "INFO", "OK"]
counts = {}
for f in findings:
    counts[f.get("severity", "?")] = counts.get(f.get("severity", "?"), 0) + 1
print("severities: " + ", ".join(f"{s} {counts[s]}" for s in order if s in counts))
for f in findings:
    if f.get("severity") in ("CRITICAL", "HIGH", "MEDIUM"):
        print(f"  {f['severity']:8} {f['id']}: {f['finding']}")
bad = [f for f in findings if f.get("severity") in ("CRITICAL", "HIGH")]
print("FAILED: HIGH or CRITICAL findings" if bad else "OK: no HIGH or CRITICAL finding")
sys.exit(1 if bad else 0)
PY
