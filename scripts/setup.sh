#!/usr/bin/env bash
# Installs what a fresh machine lacks and builds the `adp` tool into .build/adp.
# TorchSharp's native glue needs GLIBCXX_3.4.32; on hosts whose libstdc++ is older (Debian 12) the build patches
# its copy, which needs patchelf and g++ (Debian packages). Newer hosts need neither and are left untouched.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

need_fix() {
  local lib
  lib=$(/sbin/ldconfig -p 2>/dev/null | awk '/libstdc\+\+\.so\.6 .*x86-64/ {print $NF; exit}')
  [ "$(uname -s)" = Linux ] && [ -n "$lib" ] && ! grep -q 'GLIBCXX_3\.4\.32' "$lib"
}

if need_fix && { ! command -v patchelf >/dev/null || ! command -v g++ >/dev/null; }; then
  echo "setup: installing patchelf and g++ (needed to load TorchSharp with this host's libstdc++)"
  sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq patchelf g++ >/dev/null
fi
command -v dotnet >/dev/null || { echo "setup: the .NET 10 SDK is required (dotnet not found)" >&2; exit 1; }

dotnet build "$root/src/Adp.Cli/Adp.Cli.csproj" -c Release -o "$root/.build/adp" -nologo -v quiet -clp:ErrorsOnly
