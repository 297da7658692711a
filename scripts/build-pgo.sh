#!/usr/bin/env bash
# Builds trafficgen with profile-guided optimisation (PGO), for measurements and for the load
# generator shipped with the end-to-end pipeline:
#
#   scripts/build-pgo.sh        # prints the binary's path: target/pgo/release/trafficgen
#
# 1. trafficgen built instrumented (-Cprofile-generate) into target/pgo-generate;
# 2. a training run against sample-app on loopback, never against the benchmarks' nginx, so the
#    profile does not learn the benchmark's answers: a closed loop over HTTP/1 (50 connections,
#    one thread, connections closed every 1,000 answers as nginx does by default), an open loop
#    at 5,000 requests/s, HTTP/2, and both over TLS (a throwaway certificate from openssl);
# 3. the profile merged with the toolchain's llvm-profdata (rustup component llvm-tools, added
#    if missing), and trafficgen rebuilt with it (-Cprofile-use) into target/pgo.
#
# The PGO build behaves as the plain release build does (the same source, only the compiler's
# layout and inlining differ); the libraries' code (httparse and tokio on the HTTP/1.1 path,
# hyper for HTTP/2) is optimised along with trafficgen's own. docs/benchmarks.md has the figures.
set -euo pipefail
cd "$(dirname "$0")/.."

host=$(rustc -vV | sed -n 's/^host: //p')
profdata="$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata"
if [ ! -x "$profdata" ]; then
  command -v rustup > /dev/null || {
    echo "build-pgo: needs llvm-profdata from rustup's llvm-tools component, and there is no rustup" >&2
    exit 1
  }
  rustup component add llvm-tools >&2
fi

profiles=$PWD/target/pgo-profiles
rm -rf "$profiles"
cargo build --quiet --release -p sample-app
RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-generate=$profiles" \
  cargo build --quiet --release -p trafficgen --target-dir target/pgo-generate
# Build scripts ran instrumented too: only the training run's profile is wanted.
rm -rf "$profiles"

work=$(mktemp -d)
. scripts/sample-app.sh
trap 'stop_sample_apps; rm -rf "$work"' EXIT

train=target/pgo-generate/release/trafficgen
serve_sample_app --threads 1 --keepalive-requests 1000
"$train" -q -o /dev/null -c 50 --threads 1 -d 3s "http://$addr/"
"$train" -q -o /dev/null -c 20 --threads 1 -r 5000 -d 2s "http://$addr/"
"$train" -q -o /dev/null -c 4 --threads 1 --http2 -d 1s "http://$addr/"
# TLS, so that rustls's code is not laid out as never run: a throwaway self-signed certificate.
if command -v openssl > /dev/null; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
    -addext subjectAltName=IP:127.0.0.1 -addext basicConstraints=critical,CA:FALSE -keyout "$work/key.pem" -out "$work/cert.pem" 2> /dev/null
  serve_sample_app --threads 1 --tls-cert "$work/cert.pem" --tls-key "$work/key.pem"
  "$train" -q -o /dev/null -c 10 --threads 1 --cacert "$work/cert.pem" -d 1s "https://$addr/"
  "$train" -q -o /dev/null -c 4 --threads 1 --cacert "$work/cert.pem" --http2 -d 1s "https://$addr/"
else
  echo "build-pgo: no openssl to make a certificate; training without TLS" >&2
fi
stop_sample_apps

"$profdata" merge -o "$profiles/merged.profdata" "$profiles"
RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-use=$profiles/merged.profdata" \
  cargo build --quiet --release -p trafficgen --target-dir target/pgo
echo "$PWD/target/pgo/release/trafficgen"
