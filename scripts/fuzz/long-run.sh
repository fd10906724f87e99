#!/usr/bin/env bash
# Long fuzz runs of adp's parsers: the same CsCheck properties as the bounded run in the test suite
# (tests/Adp.Tests/Fuzz/ParserFuzzTests.cs: IDX raw and gzip, CIFAR-10 batches and tar.gz, safetensors, checkpoints,
# PNG, evaluation config JSON, --attack specs), each parser for a wall-clock time instead of ~1,000 inputs.
#
#   scripts/fuzz/long-run.sh [PARSER...]        PARSER: Idx CifarBinary CifarTarGz SafeTensorsFiles Checkpoints Png
#                                               ConfigJson AttackSpecs (default: all)
# Environment:
#   ADP_FUZZ_SECONDS   seconds per parser (default 600)
#   ADP_FUZZ_SEED      a CsCheck seed printed by a failure, to replay it
#   ADP_FUZZ_TIMEOUT   seconds one input may take before it counts as a hang (default 20)
#   ADP_FUZZ_FAILURES  folder for failing inputs (default: a folder printed at the start)
# Every input must end in success or an AdpException with a one-line message, within the timeout and the parser's
# allocation bound; a failure prints the exception, the CsCheck seed and the file holding the input. Add a fixed
# input to tests/fuzz-corpus/regressions/<parser>/ (replayed by FuzzRegressionTests) with its fix.
# Builds first (scripts/setup.sh builds the tool; the tests are built by dotnet test). Uses one thread for tensors.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export ADP_FUZZ_SECONDS="${ADP_FUZZ_SECONDS:-600}"
export ADP_FUZZ_FAILURES="${ADP_FUZZ_FAILURES:-$(mktemp -d "${TMPDIR:-/tmp}/adp-fuzz-failures.XXXXXX")}"
export ADP_FUZZ_VERBOSE=1 OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
parsers=("$@")
((${#parsers[@]})) || parsers=(Idx CifarBinary CifarTarGz SafeTensorsFiles Checkpoints Png ConfigJson AttackSpecs)
filter="$(printf 'FullyQualifiedName~Adp.Tests.Fuzz.ParserFuzzTests.%s|' "${parsers[@]}")"
echo "fuzz long run: ${parsers[*]}, ${ADP_FUZZ_SECONDS} s each; failing inputs go to $ADP_FUZZ_FAILURES"
dotnet build "$root/Adp.slnx" -c Release -nologo -v quiet -clp:ErrorsOnly
dotnet test "$root/Adp.slnx" -c Release --no-build --filter "${filter%|}" --logger "console;verbosity=detailed" 2>&1 \
  | grep -E '^ *fuzz |^ +[0-9]+  |Passed|Failed|Error Message|CsCheckException|FuzzFailure|input \(' || true
status=${PIPESTATUS[0]}
[ -n "$(ls -A "$ADP_FUZZ_FAILURES")" ] && echo "failing inputs: $ADP_FUZZ_FAILURES" || rmdir "$ADP_FUZZ_FAILURES"
exit "$status"
