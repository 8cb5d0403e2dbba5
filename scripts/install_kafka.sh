#!/usr/bin/env bash
# Installs the local streaming stack used by deploy/local/livedub-local.sh; idempotent and cached.
#   scripts/install_kafka.sh [--kafka] [--registry] [--prometheus] [--kcat]   (no flag: all)
# - Kafka broker jars (org.apache.kafka:kafka_2.13 + slf4j-simple) resolved by Maven from
#   deploy/local/kafka/pom.xml into <cache>/kafka-<version>/libs
# - Apicurio Registry (io.apicurio:apicurio-registry-app:<version>:tar.gz:all) unpacked into
#   <cache>/apicurio-<version>
# - Debian packages: prometheus, kcat (and a JRE + Maven when missing)
# Versions: deploy/local/versions.env. Cache: LOCAL_LIVEDUB_CACHE (default .cache/livedub-local).
set -euo pipefail
# shellcheck source=../deploy/local/common.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/deploy/local/common.sh"

log() { printf '[install_kafka] %s\n' "$*"; }
export MAVEN_OPTS="${MAVEN_OPTS:--Xmx256m}"

apt_install() {
  local missing=() p
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get -o DPkg::Lock::Timeout=600 update -qq
  $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

need_java_maven() {
  command -v java >/dev/null 2>&1 || apt_install openjdk-17-jre-headless
  command -v mvn >/dev/null 2>&1 || apt_install maven
}

install_kafka() {
  if [ -f "$KAFKA_LIBS/kafka_2.13-$KAFKA_VERSION.jar" ]; then
    log "kafka $KAFKA_VERSION jars present ($KAFKA_LIBS)"; return 0
  fi
  need_java_maven
  log "resolving kafka_2.13:$KAFKA_VERSION + slf4j-simple:$SLF4J_VERSION with Maven"
  local tmp="$KAFKA_LIBS.tmp"
  rm -rf "$tmp"
  mvn -B -q -Dstyle.color=never -f "$LD_DEPLOY/kafka/pom.xml" dependency:copy-dependencies \
      -Dkafka.version="$KAFKA_VERSION" -Dslf4j.version="$SLF4J_VERSION" \
      -DincludeScope=runtime -DoutputDirectory="$tmp"
  [ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ] || { echo "kafka jar missing after resolve" >&2; exit 1; }
  rm -rf "$KAFKA_LIBS"
  mv "$tmp" "$KAFKA_LIBS"
  log "kafka jars: $(find "$KAFKA_LIBS" -name '*.jar' | wc -l) in $KAFKA_LIBS"
}

install_registry() {
  if [ -f "$APICURIO_HOME/quarkus-run.jar" ] || compgen -G "$APICURIO_HOME/*-runner.jar" >/dev/null; then
    log "apicurio registry $APICURIO_VERSION present ($APICURIO_HOME)"; return 0
  fi
  need_java_maven
  local art="io.apicurio:apicurio-registry-app:$APICURIO_VERSION:tar.gz:all"
  local dl="$LD_CACHE/dl" tmp="$APICURIO_HOME.tmp"
  log "resolving $art with Maven"
  mkdir -p "$dl"
  mvn -B -q -Dstyle.color=never dependency:copy -Dartifact="$art" -DoutputDirectory="$dl"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  tar -xzf "$dl/apicurio-registry-app-$APICURIO_VERSION-all.tar.gz" -C "$tmp"
  rm -f "$dl/apicurio-registry-app-$APICURIO_VERSION-all.tar.gz"   # Maven keeps its own copy
  rmdir "$dl" 2>/dev/null || true
  rm -rf "$APICURIO_HOME"
  mv "$tmp" "$APICURIO_HOME"
  log "apicurio registry unpacked into $APICURIO_HOME"
}

install_prometheus() {
  apt_install prometheus
  log "prometheus present: $(prometheus --version 2>&1 | head -n1)"
}

install_kcat() {
  apt_install kcat
  log "kcat present: $(kcat -V 2>&1 | head -n1)"
}

want=("$@")
[ ${#want[@]} -gt 0 ] || want=(--kafka --registry --prometheus --kcat)
mkdir -p "$LD_CACHE"
for w in "${want[@]}"; do
  case "$w" in
    --kafka) install_kafka ;;
    --registry) install_registry ;;
    --prometheus) install_prometheus ;;
    --kcat) install_kcat ;;
    *) echo "usage: $0 [--kafka] [--registry] [--prometheus] [--kcat]" >&2; exit 2 ;;
  esac
done
