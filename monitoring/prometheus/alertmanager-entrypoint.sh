#!/bin/sh
# Render alertmanager.yml.in with the project's alert webhook and start Alertmanager.
# MLOPS_ALERT_WEBHOOK_URL is a secret (environment only); it is written only to a private file of
# the container. Without it alerts go to receiver "none" (UI only).
set -eu
dir=/tmp/alertmanager-config
umask 077
mkdir -p "$dir"
url="${MLOPS_ALERT_WEBHOOK_URL:-}"
receiver=webhook
if [ -z "$url" ]; then
    receiver=none
    url="http://127.0.0.1:9/unused"
fi
# '|' cannot appear in a URL unescaped, so it is a safe sed delimiter; escape '&' and '\'.
esc=$(printf '%s' "$url" | sed -e 's/[\\&]/\\&/g')
sed -e "s|__RECEIVER__|$receiver|g" -e "s|__WEBHOOK_URL__|$esc|g" \
    /etc/mlops/prometheus/alertmanager.yml.in > "$dir/alertmanager.yml"
if [ "${1:-}" = "--render-only" ]; then
    exit 0
fi
exec /bin/alertmanager \
    --config.file="$dir/alertmanager.yml" \
    --storage.path=/alertmanager \
    --cluster.listen-address= \
    "$@"
