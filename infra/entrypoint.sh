#!/bin/sh
# Entry point of the project image. Turns secrets given as environment variables into the files two
# services insist on reading, then runs the command unchanged:
#   - Airflow's SimpleAuthManager reads user passwords from a JSON file (it would otherwise generate
#     one and print it to the log); AIRFLOW_ADMIN_PASSWORD becomes that file.
#   - MLflow's basic-auth app reads its user-store URL from an ini file; MLFLOW_AUTH_DATABASE_URI
#     becomes that file (the admin password itself is read from MLFLOW_AUTH_ADMIN_PASSWORD by MLflow).
# Files are written to the container's own home (mode 600), never to a shared volume.
set -eu
umask 077

if [ -n "${AIRFLOW_ADMIN_PASSWORD:-}" ]; then
  pw_file="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:-${AIRFLOW_HOME:-/opt/airflow}/simple_auth_manager_passwords.json}"
  export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE="$pw_file"
  python - "$pw_file" <<'PY'
import json, os, sys
user = os.environ.get("AIRFLOW_ADMIN_USERNAME", "admin")
with open(sys.argv[1], "w") as fh:
    json.dump({user: os.environ["AIRFLOW_ADMIN_PASSWORD"]}, fh)
PY
  unset AIRFLOW_ADMIN_PASSWORD
fi

if [ -n "${MLFLOW_AUTH_DATABASE_URI:-}" ]; then
  ini="${HOME:-/opt/airflow}/mlflow_basic_auth.ini"
  cat >"$ini" <<INI
[mlflow]
default_permission = ${MLFLOW_AUTH_DEFAULT_PERMISSION:-READ}
database_uri = ${MLFLOW_AUTH_DATABASE_URI}
admin_username = ${MLFLOW_AUTH_ADMIN_USERNAME:-admin}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
INI
  export MLFLOW_AUTH_CONFIG_PATH="$ini"
  unset MLFLOW_AUTH_DATABASE_URI
fi

exec "$@"
