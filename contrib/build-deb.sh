#!/bin/sh
# Build tern's Debian package.  dpkg-buildpackage wants debian/ at the
# top of a source tree, and tern keeps it in contrib/debian: this copies
# the source tree into a temporary directory with contrib/debian as
# debian/, builds the binary package there, and leaves the .deb (with
# its .buildinfo and .changes) in OUTDIR, the current directory by
# default.
#
#   contrib/build-deb.sh [OUTDIR]
#
# Needs the build dependencies of contrib/debian/control, dpkg-dev and
# debhelper.  DEB_BUILD_OPTIONS is passed on (nocheck skips the unit
# tests, parallel=N builds with N jobs).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "${1:-.}"
out=$(cd "${1:-.}" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/tern-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
src="$work/tern"
mkdir "$src"

# The sources, never a build tree or what a build left in the tree.
if [ -e "$top/.git" ] && command -v git >/dev/null; then
	git -C "$top" ls-files -z --cached --others --exclude-standard |
	    tar -C "$top" --null --ignore-failed-read -T - -cf - |
	    tar -C "$src" -xf -
else
	tar -C "$top" --exclude='./build*' --exclude=./_build \
	    --exclude=./.git --exclude=./autom4te.cache --exclude='*.o' \
	    -cf - . |
	    tar -C "$src" -xf -
fi
rm -rf "$src/debian"
cp -R "$top/contrib/debian" "$src/debian"

cd "$src"
dpkg-buildpackage -us -uc -b
cp "$work"/*.deb "$work"/*.buildinfo "$work"/*.changes "$out"/
ls "$work"/*.deb | sed 's|.*/|built: '"$out"'/|'
