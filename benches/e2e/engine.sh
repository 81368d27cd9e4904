# Engine file for the side-by-side harness (../shared/bench/peers): coflow serving
# benches/e2e/flows. scripts/bench-e2e copies it to engines.d/coflow-<variant>.sh with
# COFLOW_VARIANT set to sqlite, postgres or nohistory.
ENGINE_PORT=18110
ENGINE_URL="http://127.0.0.1:${ENGINE_PORT}/hooks/referral"
ENGINE_READY_URL="http://127.0.0.1:${ENGINE_PORT}/readyz"
engine_version() { echo "coflow $(git -C "$COFLOW_REPO" rev-parse --short HEAD) ($COFLOW_VARIANT)"; }
engine_prepare() {
  mkdir -p "$WORKDIR/flows/mappings"
  sed "s#CRM_URL#${CRM_URL}#" "$COFLOW_REPO/benches/e2e/flows/referral.yaml" > "$WORKDIR/flows/referral.yaml"
  cp "$COFLOW_REPO"/benches/e2e/flows/mappings/*.yaml "$WORKDIR/flows/mappings/"
  if [ "$COFLOW_VARIANT" = postgres ]; then
    psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS coflow_bench WITH (FORCE)" \
      -c "CREATE DATABASE coflow_bench" >/dev/null
  fi
}
engine_start() {
  local store history=""
  case "$COFLOW_VARIANT" in
    sqlite) store="sqlite://$WORKDIR/coflow.db" ;;
    postgres) store="postgres://postgres@127.0.0.1:5432/coflow_bench" ;;
    nohistory) store="sqlite::memory:"; history="--no-history" ;;
  esac
  export CRM_TOKEN COFLOW_LOG=warn
  exec "$COFLOW_BIN" serve --flows "$WORKDIR/flows" --store "$store" $history \
    --listen "127.0.0.1:${ENGINE_PORT}" --no-schedule --no-reload --workers 64
}
