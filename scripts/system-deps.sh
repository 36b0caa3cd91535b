#!/usr/bin/env bash
# Install the Debian packages Planboard's dev stack needs, only when missing.
# Java and Maven fetch Kafka from Maven Central; Go builds FerretDB; redis-server is Redis.
# chromium + chromium-driver drive the Swagger UI page in a real headless browser
# (tests/integration/test_swagger_ui.py); they are large, so installed only once.
# Node.js and npm run mermaid's own parser on the mermaid export (tests/js).
set -euo pipefail

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need+=(maven)
command -v go >/dev/null || need+=(golang-go)
command -v pgrep >/dev/null || need+=(procps)
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "missing system packages: ${need[*]} — install them with: sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
echo "installing system packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
