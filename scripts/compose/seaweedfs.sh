#!/bin/sh
# Entrypoint of the `seaweedfs` service (chrislusf/seaweedfs): master, volume server, filer and S3 gateway in one
# process (`weed server -s3`), the object store of the staging, work and picking areas. Its one S3 identity is the
# key pair of .env (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in this container): the identities file is written
# here, at start, into a tmpfs (mode 0600), so no secret lives in the repository, the image or a volume.
set -eu
: "${AWS_ACCESS_KEY_ID:?AWS_ACCESS_KEY_ID is not set (S3_ACCESS_KEY in .env)}"
: "${AWS_SECRET_ACCESS_KEY:?AWS_SECRET_ACCESS_KEY is not set (S3_SECRET_KEY in .env)}"
case "$AWS_ACCESS_KEY_ID$AWS_SECRET_ACCESS_KEY" in
  *[!A-Za-z0-9._~+/=-]*) echo "seaweedfs: the S3 keys may hold only letters, digits and ._~+/=- (make them with" \
                              "secrets.token_urlsafe, see .env.example)" >&2; exit 1 ;;
esac
config=${S3_IDENTITIES:-/run/seaweedfs/s3.json}   # a tmpfs in docker-compose.yaml
mkdir -p "$(dirname "$config")"
umask 077
printf '{"identities": [{"name": "eventindex", "credentials": [{"accessKey": "%s", "secretKey": "%s"}],
  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}\n' \
  "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" > "$config"
# the image's entrypoint adds -dir=/data (the named volume) and its volume-size defaults
exec "${SEAWEEDFS_ENTRYPOINT:-/entrypoint.sh}" server -ip=seaweedfs -ip.bind=0.0.0.0 \
  -s3 -s3.port=8333 -s3.config="$config" "$@"
