#!/bin/bash
# Run once, by docker-entrypoint.sh, while the new cluster is up on a private socket
# (PGHOST, PGUSER and PGDATABASE point at it): PostGIS in the application database.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet -c 'CREATE EXTENSION IF NOT EXISTS postgis'
