#!/usr/bin/python3
"""Why the peer's EOT-gradient norm differs from adp's (docs/BENCHMARKS.md, full-gradient section).

Croce et al.'s diff_adp computes the initial noise as init_noise = clip(x + sigma*z) - x without gradient and adds it to x,
so the gradient passes straight through the clip; adp differentiates x0 = clip(x + sigma*z) as written (zero gradient
where the clip is active). This script computes both EOT gradients with the SAME noise draws (same weights, first test
images) for a few seeds and prints their norms, the norm of the first image (which dominates the batch on
Fashion-MNIST) and their cosine similarity.

usage: /usr/bin/python3 init_clip_gradient.py SCORE.ckpt CLASSIFIER.ckpt DATA_DIR [eot=20] [batch=8] [seeds=0,1,2,3]
(Debian's python3-torch; one thread.)
"""
import sys
import json
import torch
import torch.nn.functional as F
import diff_adp_eot as d
from paper_ncsnv2 import NCSNv2


def main():
    score, clf_path, data = sys.argv[1], sys.argv[2], sys.argv[3]
    eot = int(sys.argv[4]) if len(sys.argv) > 4 else 20
    batch = int(sys.argv[5]) if len(sys.argv) > 5 else 8
    seeds = [int(s) for s in (sys.argv[6] if len(sys.argv) > 6 else "0,1,2,3").split(",")]
    torch.set_num_threads(1)
    sd, meta = d.load_checkpoint(score)
    cfg = json.loads(meta["config"])
    ebm = NCSNv2(cfg["Channels"], cfg["ImageSize"], cfg["Ngf"]).eval()
    ebm.load_state_dict({k[6:]: v for k, v in sd.items() if k.startswith("model.")})
    csd, _ = d.load_checkpoint(clf_path)
    clf = d.SmallCnn().eval()
    clf.load_state_dict({k[6:]: v for k, v in csd.items() if k.startswith("model.")})
    for p in list(ebm.parameters()) + list(clf.parameters()):
        p.requires_grad_(False)
    x, y = d.mnist_test(data, batch)
    for seed in seeds:
        grads = {}
        for straight in (True, False):
            torch.manual_seed(seed)
            g = torch.zeros_like(x)
            for _ in range(eot):
                xr = x.clone().requires_grad_()
                if straight:
                    out = d.diff_adp(xr, ebm, clf)  # their noise injection
                else:
                    out = d.diff_adp((xr + torch.randn_like(x) * 0.25).clamp(0, 1), ebm, clf, sigma=0.0)  # adp's
                g += torch.autograd.grad(F.cross_entropy(out, y, reduction="none").sum(), [xr])[0]
            grads[straight] = g / eot
        a, b = grads[True], grads[False]
        print(f"seed {seed}: straight-through |g| {a.norm():.3g} (image 0: {a[0].norm():.3g}), "
              f"exact clip |g| {b.norm():.3g} (image 0: {b[0].norm():.3g}), ratio {a.norm() / b.norm():.2f}, "
              f"cosine {F.cosine_similarity(a.flatten(), b.flatten(), 0):.3f}", flush=True)


if __name__ == "__main__":
    main()
