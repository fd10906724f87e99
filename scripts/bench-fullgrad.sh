#!/usr/bin/env bash
# Full-gradient PGD+EOT: one attack iteration (the EOT gradient of a batch through the whole purifier) timed for
#   (a) adp with the n_EOT copies purified together (default), (b) adp one copy at a time, (c) adp batched with every step's
#   graph kept (checkpointing=false, `adp eval robust --no-checkpointing`), and (d) the peer: Croce et al.'s diff_adp EOT
#   loop on the paper's NCSNv2 in PyTorch (bench/pytorch/diff_adp_eot.py),
# with the same weights and settings, in one run, each in a fresh process (peak memory is per process).
# Run it on an idle machine: usage scripts/bench-fullgrad.sh [threads] [eot] [batch] [iters]; needs Debian's python3-torch.
# Each process runs ITERS iterations (default 2) and reports each: the first also maps its working set's pages fresh, later
# ones run warm, as an attack's iterations after its first do; compare the last lines.
# The CIFAR-10 shape (32×32×3, ngf-32 score model, ResNet classifier) too: the peer script holds a port of adp's ResNet.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
threads="${1:-2}" eot="${2:-20}" batch="${3:-8}" iters="${4:-2}"
data="${ADP_DATA_DIR:-$root/../shared/data}"
cd "$root"
dotnet build bench/Adp.Bench -c Release -nologo -v quiet >/dev/null
bench() { OMP_NUM_THREADS="$threads" dotnet run -c Release --no-build --project bench/Adp.Bench -- "$@"; }
for pair in "mnist-score-v1.ckpt mnist-smallcnn.ckpt" "fashion-mnist-score-v1.ckpt fashion-mnist-smallcnn.ckpt"; do
    set -- $pair
    echo "## $1 + $2"
    for mode in "batched=true" "batched=false" "batched=true checkpointing=false"; do
        bench fullgrad score="models/$1" classifier="models/$2" eot="$eot" batch="$batch" $mode iters="$iters" data="$data"
    done
    (cd bench/pytorch && /usr/bin/python3 diff_adp_eot.py "../../models/$1" "../../models/$2" "$threads" "$eot" "$batch" \
        "$data/$(case $1 in mnist*) echo mnist;; *) echo fashion-mnist;; esac)" "$iters")
done
echo "## cifar10-score.ckpt + cifar10-resnet-small.ckpt"
(cd bench/pytorch && /usr/bin/python3 diff_adp_eot.py --accuracy ../../models/cifar10-resnet-small.ckpt "$data/cifar-10-batches-bin" 1000)
for mode in "batched=true" "batched=false" "batched=true checkpointing=false"; do
    bench fullgrad score=models/cifar10-score.ckpt classifier=models/cifar10-resnet-small.ckpt eot="$eot" batch="$batch" $mode \
        iters="$iters" data="$data"
done
(cd bench/pytorch && /usr/bin/python3 diff_adp_eot.py ../../models/cifar10-score.ckpt ../../models/cifar10-resnet-small.ckpt "$threads" "$eot" \
    "$batch" "$data/cifar-10-batches-bin" "$iters")
