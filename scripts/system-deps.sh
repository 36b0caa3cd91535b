#!/usr/bin/env bash
# Install the Debian packages Planboard needs, only when missing.
#   scripts/system-deps.sh run    what `make run` needs: redis-server is Redis, Java and Maven
#                                 fetch and run Kafka from Maven Central, curl and jq for the
#                                 banner's and docs/quickstart.md's commands
#   scripts/system-deps.sh [test] that, plus what `make test` needs: Go builds the Kubernetes
#                                 tools (and FerretDB), chromium + chromium-driver drive the
#                                 Swagger UI page in a real headless browser
#                                 (tests/integration/test_swagger_ui.py), Node.js and npm run
#                                 mermaid's own parser (tests/js); they are large, so installed once.
set -euo pipefail

mode="${1:-test}"
case "$mode" in
  run | test) ;;
  *)
    echo "usage: $0 [run|test]" >&2
    exit 2
    ;;
esac

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need+=(maven)
command -v pgrep >/dev/null || need+=(procps)
command -v curl >/dev/null || need+=(curl)
command -v jq >/dev/null || need+=(jq)
if [ "$mode" = test ]; then
  command -v go >/dev/null || need+=(golang-go)
  command -v chromium >/dev/null || need+=(chromium)
  command -v chromedriver >/dev/null || need+=(chromium-driver)
  command -v node >/dev/null || need+=(nodejs)
  command -v npm >/dev/null || need+=(npm)
fi

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
