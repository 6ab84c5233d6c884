#!/bin/sh
# Start Prometheus with basic auth on its web UI and API.
#
# `make env` (scripts/make_env.py) writes PROMETHEUS_ADMIN_PASSWORD and its bcrypt hash
# (PROMETHEUS_ADMIN_PASSWORD_BCRYPT_B64, base64 so the `$` of the hash survive every .env parser);
# this writes Prometheus' web config file with the hash, and the plain password into a file the
# self-scrape reads. Both live in a private directory of the container, never in the repo.
set -eu
: "${PROMETHEUS_ADMIN_PASSWORD:?PROMETHEUS_ADMIN_PASSWORD is missing - run make env}"
: "${PROMETHEUS_ADMIN_PASSWORD_BCRYPT_B64:?PROMETHEUS_ADMIN_PASSWORD_BCRYPT_B64 is missing - run make env}"
dir=/tmp/prometheus-web
umask 077
mkdir -p "$dir"
printf '%s' "$PROMETHEUS_ADMIN_PASSWORD" > "$dir/password"
hash=$(printf '%s' "$PROMETHEUS_ADMIN_PASSWORD_BCRYPT_B64" | base64 -d)
printf '# written by prometheus-entrypoint.sh\nbasic_auth_users:\n  admin: %s\n' "$hash" > "$dir/web.yml"
if [ "${1:-}" = "--render-only" ]; then
    exit 0
fi
exec /bin/prometheus \
    --config.file=/etc/mlops/prometheus/prometheus.yml \
    --web.config.file="$dir/web.yml" \
    --storage.tsdb.path=/prometheus \
    --storage.tsdb.retention.time="${PROMETHEUS_RETENTION:-30d}" \
    "$@"
