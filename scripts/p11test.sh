#!/usr/bin/env bash
# Builds OpenSC's PKCS#11 conformance tester p11test, which Debian does not package, from
# Debian's own opensc source package: `scripts/p11test.sh OUT_DIR` leaves OUT_DIR/p11test.
#
# deb-src is enabled for the one download of the source package (a source list of our own in
# sources.list.d, removed again afterwards). p11test needs only OpenSSL and cmocka: its
# Makefile.am compiles the files of src/tests/p11test with them alone, and the only thing it
# reads from OpenSC's config.h is ENABLE_OPENSSL. So this compiles those files
# directly instead of running OpenSC's autotools (which the release tarball leaves to the
# builder) for a config.h with one line that matters.
set -euo pipefail
out="${1:?usage: scripts/p11test.sh OUT_DIR}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else echo "need root for: $*" >&2; return 1; fi
}

need=()
for pkg in libcmocka-dev libssl-dev pkg-config dpkg-dev gcc make; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing ${need[*]} (to build p11test)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

work="$(mktemp -d)"
# deb-src for this one download: a source list of our own beside the machine's, removed again
# on the way out (the machine's lists, in whatever layout, stay as they are).
src_list=/etc/apt/sources.list.d/ukey-p11test-deb-src.sources
trap 'rm -rf "$work"; as_root rm -f "$src_list"' EXIT
. /etc/os-release
cat > "$work/deb-src.sources" <<EOF
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: $VERSION_CODENAME $VERSION_CODENAME-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
as_root cp "$work/deb-src.sources" "$src_list"
as_root apt-get update -qq
chmod 777 "$work"
(cd "$work" && apt-get source -qq --download-only opensc 2>&1 | grep -v "^W: Download is performed unsandboxed" || true)
as_root rm -f "$src_list"
dsc="$(ls "$work"/opensc_*.dsc)"
# The signature is Debian's; its keyring is not on every machine, and apt checked the hashes.
dpkg-source --no-check -x "$dsc" "$work/opensc" >/dev/null

src="$work/opensc/src/tests/p11test"
printf '/* What p11test reads of OpenSC config.h (see scripts/p11test.sh). */\n#define ENABLE_OPENSSL 1\n' \
  > "$work/config.h"
# shellcheck disable=SC2046 # pkg-config prints several words on purpose
gcc -O1 -w -I"$work" -I"$work/opensc/src" -o "$out/p11test.new" \
  "$src"/p11test.c "$src"/p11test_loader.c "$src"/p11test_case_*.c "$src"/p11test_helpers.c \
  $(pkg-config --cflags --libs cmocka libcrypto) -ldl
mv "$out/p11test.new" "$out/p11test"
echo "== p11test from $(basename "$dsc" .dsc) in $out"
