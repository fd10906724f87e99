#!/usr/bin/env bash
# Makes TorchSharp's native glue load on hosts whose libstdc++ lacks GLIBCXX_3.4.32 (e.g. Debian 12).
# libLibTorchSharp.so needs that version for one symbol, std::ios_base_library_init(); we mark the
# requirement weak, drop the symbol's version, and add a tiny library that defines the symbol.
# Hosts whose libstdc++ is new enough are left untouched. Idempotent. Usage: fix-libtorchsharp.sh DIR...
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[ "$(uname -s)" = Linux ] && [ "$(uname -m)" = x86_64 ] || exit 0

libstdcxx=$(/sbin/ldconfig -p 2>/dev/null | awk '/libstdc\+\+\.so\.6 .*x86-64/ {print $NF; exit}')
[ -n "$libstdcxx" ] || libstdcxx=$(g++ -print-file-name=libstdc++.so.6 2>/dev/null || true)
if [ -n "$libstdcxx" ] && grep -q 'GLIBCXX_3\.4\.32' "$libstdcxx"; then exit 0; fi

stub=libadp_ios_base_library_init.so
for dir in "$@"; do
  for lib in "$dir"/runtimes/linux-x64/native/libLibTorchSharp.so "$dir"/libLibTorchSharp.so; do
    [ -f "$lib" ] || continue
    libdir=$(dirname "$lib")
    if ! command -v patchelf >/dev/null || ! command -v g++ >/dev/null; then
      echo "fix-libtorchsharp: $lib needs patching for this host's libstdc++, but patchelf and g++ are required (apt-get install patchelf g++)" >&2
      exit 1
    fi
    [ -f "$libdir/$stub" ] || g++ -shared -fPIC -O2 -o "$libdir/$stub" "$here/ios_base_library_init.cpp"
    if patchelf --print-needed "$lib" | grep -qx "$stub"; then continue; fi
    tool="$here/obj/weaken_verneed"
    if [ ! -x "$tool" ] || [ "$here/weaken_verneed.cpp" -nt "$tool" ]; then
      mkdir -p "$here/obj" && g++ -O2 -o "$tool.tmp.$$" "$here/weaken_verneed.cpp" && mv "$tool.tmp.$$" "$tool"
    fi
    tmp="$lib.tmp.$$"
    cp "$lib" "$tmp"
    "$tool" "$tmp" GLIBCXX_3.4.32
    patchelf --clear-symbol-version _ZSt21ios_base_library_initv "$tmp"
    patchelf --add-needed "$stub" "$tmp"
    mv "$tmp" "$lib"   # rename: a process that has the old file mapped keeps it
    echo "fix-libtorchsharp: patched $lib for $(basename "$libstdcxx") without GLIBCXX_3.4.32"
  done
done
