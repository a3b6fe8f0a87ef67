#!/usr/bin/env bash
# Installs the Debian packages durable builds with, and only those that are missing.
# Idempotent: prints nothing and does nothing when everything is already installed.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libsqlite3-dev          # the embedded store
  libpq-dev               # the PostgreSQL store's client library (libpq)
  postgresql-15           # the PostgreSQL tests start a private server of their own (initdb, pg_ctl)
  libcpp-httplib-dev      # HTTP clients: the SDK's Client, the CLI, the alert webhook (pkg-config: cpp-httplib)
  libboost-dev            # the HTTP server: Boost.Beast over Asio, asynchronous, header-only
  zlib1g-dev              # gzip request and answer bodies
  libssl-dev              # OpenSSL: HMAC-SHA256 signatures of the alert webhook, https in httplib
  nlohmann-json3-dev      # JSON
  libfmt-dev              # formatting
  doctest-dev             # tests
  libstb-dev libwebp-dev  # the image example: decode/resize (stb), encode (libwebp)
  libhowardhinnant-date-dev  # time zones and DST of cron triggers (Howard Hinnant's date/tz, system tz database)
  tzdata                  # the system tz database (/usr/share/zoneinfo) that date/tz reads
  prometheus              # promtool: tests/metrics_test.cpp checks GET /metrics with it
  chromium                # the dashboard's browser tests (tests/dashboard_e2e_test.cpp), driven by playwright-core
  faketime                # libfaketime (LD_PRELOAD): tests/clock_step_test.cpp steps a worker process's system clock
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js and npm run the inngest npm package in tests/inngest_compat_test.cpp. A node already
# on the machine, whoever packaged it, is kept: Debian's are only for a machine without one.
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
