#!/usr/bin/python3
"""How well can any float32 implementation reproduce the reference step sizes? Runs the faithful ADP step-size
computation at every reference iterate with this machine's PyTorch (the paper-network port in paper_ncsnv2.py)
and compares α with the reference's. usage: alpha_conditioning.py REFERENCE_DIR"""
import sys
import torch
from paper_ncsnv2 import NCSNv2, load_safetensors

f = load_safetensors(f"{sys.argv[1]}/ncsnv2_mnist_ngf16_a.safetensors")
net = NCSNv2(1, 28, 16).eval()
net.load_state_dict({k[6:]: v for k, v in f.items() if k.startswith("score.") and k != "score.sigmas"})
it, steps = f["adp_iterates"], f["adp_step_sizes"]
lam, delta = 0.05, 1e-3
with torch.no_grad():
    for dtype, z32 in ((torch.float32, False), (torch.float32, True), (torch.float64, False)):
        n = net.to(dtype)
        worst = 0.0
        for t in range(steps.shape[0]):
            x = it[t].to(dtype)
            g = n(x); g2 = n(x + delta * g)
            gd, g2d = g.double().flatten(1), g2.double().flatten(1)
            z = (gd * g2d).sum(1) / (gd * gd).sum(1)
            if dtype == torch.float32 and z32:  # inner products in float32 too, as a float32 research code would
                z = ((g * g2).flatten(1).sum(1) / (g * g).flatten(1).sum(1)).double()
            a = torch.clamp(lam * delta / (1 - z), 1e-5, 0.1)
            ref = steps[t].double()
            run = ref > 0
            if run.any():
                worst = max(worst, ((a[run] - ref[run]).abs() / ref[run]).max().item())
        note = ", inner products in float32" if z32 else ""
        print(f"torch {torch.__version__} network in {dtype}{note}: worst relative α difference to the reference over all steps: {worst:.2e}")
