#!/usr/bin/env bash
# The whole test suite: what .ci/run calls and what README tells developers to run.
# Installs the third-party judges (Debian packages) when missing and starts pcscd, so the
# PC/SC interop tests run for real; under CI=true those tests fail rather than skip.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else echo "need root for: $*" >&2; return 1; fi
}

# package -> a file that proves it is installed
declare -A NEED=(
  [openssl]=/usr/bin/openssl
  [procps]=/usr/bin/pgrep
  [pcscd]=/usr/sbin/pcscd
  [vsmartcard-vpcd]=/usr/lib/pcsc/drivers/serial/libifdvpcd.so
  [opensc]=/usr/bin/pkcs11-tool
  [yubico-piv-tool]=/usr/bin/yubico-piv-tool
  [postgresql]=/usr/lib/postgresql/15/bin/postgres
  # The pages' browser tests: Chromium driven over WebDriver, and a CJK font (Chinese
  # renders as boxes without one).
  [chromium]=/usr/bin/chromium
  [chromium-driver]=/usr/bin/chromedriver
  [fonts-wqy-microhei]=/usr/share/fonts/truetype/wqy/wqy-microhei.ttc
  # The PKCS#11 module's judges: GnuTLS's p11tool, p11-kit, ssh (client, agent, a loopback
  # sshd), NSS's modutil/certutil, OpenSSL's pkcs11 engine.
  [gnutls-bin]=/usr/bin/p11tool
  [p11-kit]=/usr/bin/p11-kit
  [openssh-client]=/usr/bin/ssh-keygen
  [openssh-server]=/usr/sbin/sshd
  [libnss3-tools]=/usr/bin/modutil
  [libengine-pkcs11-openssl]=/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so
  # `ukey bench pkcs11` measures the module against SoftHSMv2.
  [softhsm2]=/usr/lib/softhsm/libsofthsm2.so
  # The USB/IP server's judge: `usbip list -r` (user space, no kernel module).
  [usbip]=/usr/sbin/usbip
)
missing=()
for pkg in "${!NEED[@]}"; do
  [ -e "${NEED[$pkg]}" ] || missing+=("$pkg")
done
# npm fetches axe-core below; any npm will do.
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]} (Debian packages the tests use as judges)"
  if ! { as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }; then
    [ -n "${CI:-}" ] && { echo "could not install ${missing[*]}" >&2; exit 1; }
    echo "!! could not install ${missing[*]}: the tests that need them will say SKIPPED"
  fi
fi

# pcscd must be running with the vpcd driver loaded (it reads reader.conf only at start).
vpcd_readers() { command -v opensc-tool >/dev/null && opensc-tool -l 2>/dev/null | grep -q "Virtual PCD 00 01"; }
if [ -x /usr/sbin/pcscd ] && ! vpcd_readers; then
  echo "== starting pcscd (with the vsmartcard-vpcd readers)"
  if pgrep -x pcscd >/dev/null; then as_root pkill -x pcscd || true; sleep 1; fi
  as_root /usr/sbin/pcscd || true
  for _ in $(seq 1 50); do vpcd_readers && break; sleep 0.2; done
  if ! vpcd_readers; then
    [ -n "${CI:-}" ] && { echo "pcscd did not show the vpcd readers" >&2; exit 1; }
    echo "!! pcscd is not showing the vpcd readers: PC/SC tests will say SKIPPED"
  fi
fi

# A real PostgreSQL server for the portal's second backend (unless UKEY_TEST_POSTGRES names one).
if [ -z "${UKEY_TEST_POSTGRES:-}" ] && [ -x /usr/bin/pg_ctlcluster ]; then
  read -r pg_version pg_cluster pg_port pg_status _ < <(pg_lsclusters -h | head -1) || true
  if [ -n "${pg_version:-}" ]; then
    if [ "$pg_status" != online ]; then
      echo "== starting PostgreSQL $pg_version/$pg_cluster"
      as_root pg_ctlcluster "$pg_version" "$pg_cluster" start || true
    fi
    if as_root su postgres -c "psql -p $pg_port -qc \"ALTER USER postgres PASSWORD 'ukey'\"" >/dev/null 2>&1; then
      export UKEY_TEST_POSTGRES="postgres://postgres:ukey@127.0.0.1:$pg_port/postgres"
    fi
  fi
fi
if [ -z "${UKEY_TEST_POSTGRES:-}" ]; then
  [ -n "${CI:-}" ] && { echo "no PostgreSQL server for the portal tests" >&2; exit 1; }
  echo "!! no PostgreSQL server: the portal's PostgreSQL tests will say SKIPPED"
fi

# axe-core, the accessibility judge the browser tests inject into every page: from the npm
# registry into target/axe once (no npm at run time of the portal).
export UKEY_AXE_JS="$PWD/target/axe/node_modules/axe-core/axe.min.js"
if [ ! -f "$UKEY_AXE_JS" ] && command -v npm >/dev/null; then
  echo "== installing axe-core into target/axe"
  npm install --silent --no-audit --no-fund --prefix target/axe axe-core@4 >/dev/null || true
fi
if [ ! -f "$UKEY_AXE_JS" ]; then
  [ -n "${CI:-}" ] && { echo "could not install axe-core (npm)" >&2; exit 1; }
  echo "!! no axe-core: the browser tests will say SKIPPED"
fi

# OpenSC's PKCS#11 conformance tester p11test judges the module. Debian does not package it, so
# it is built from Debian's opensc source package, once per target directory.
export UKEY_P11TEST="${CARGO_TARGET_DIR:-$PWD/target}/p11test/p11test"
if [ ! -x "$UKEY_P11TEST" ]; then
  echo "== building OpenSC's p11test into $(dirname "$UKEY_P11TEST")"
  if ! bash scripts/p11test.sh "$(dirname "$UKEY_P11TEST")"; then
    [ -n "${CI:-}" ] && { echo "could not build p11test" >&2; exit 1; }
    echo "!! could not build p11test: the p11test runs will say SKIPPED"
  fi
fi

# The USB/IP judge with a real kernel: a QEMU guest (Debian's kernel, a busybox initramfs
# with usbip and socat) attaches a served key over virtio-serial (cli/tests/qemu.rs).
export UKEY_QEMU_GUEST="${CARGO_TARGET_DIR:-$PWD/target}/qemu-guest"
echo "== building the QEMU guest into $UKEY_QEMU_GUEST"
if ! bash scripts/qemu-guest.sh "$UKEY_QEMU_GUEST"; then
  [ -n "${CI:-}" ] && { echo "could not build the QEMU guest" >&2; exit 1; }
  echo "!! could not build the QEMU guest: the kernel USB/IP test will say SKIPPED"
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy (warnings denied)"
cargo clippy --workspace --all-targets -- -D warnings
echo "== no_std build of proto and the card core"
cargo build -p proto --no-default-features
cargo build -p token-sim --no-default-features
echo "== tests"
# Every judge a test could not find is written here (testsupport::skip); under CI=true a
# missing judge fails its test instead.
skipped="${CARGO_TARGET_DIR:-$PWD/target}/debug/skipped-judges.log"
rm -f "$skipped"
cargo test --workspace
if [ -s "$skipped" ]; then
  echo "== $(wc -l < "$skipped") test(s) skipped for want of a judge or service:"
  sort "$skipped" | sed 's/^/   /'
else
  echo "== no test was skipped for want of a judge"
fi
