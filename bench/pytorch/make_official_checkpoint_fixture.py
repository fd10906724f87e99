#!/usr/bin/python3
"""Makes tests/fixtures/ncsnv2-official-tiny.pth: a tiny NCSNv2 checkpoint in the format the official NCSNv2 code
(ermongroup/ncsnv2, runners/ncsn_runner.py) and the ADP research code save: torch.save of the list
[model.state_dict(), optimizer.state_dict(), epoch, step, ema_helper.state_dict()], the model wrapped in
nn.DataParallel (so every key starts with "module."), a "module.sigmas" buffer holding the geometric noise levels, and
the EMA helper's shadow (parameters only). The EMA weights are set to half the raw ones so a test can tell which it
read. Also writes the raw weights and h(x) for a fixed x as safetensors, for the import test to compare against.

usage: /usr/bin/python3 make_official_checkpoint_fixture.py OUT_DIR     (Debian's python3-torch; seed fixed)
"""
import json, math, struct, sys
import torch
from paper_ncsnv2 import NCSNv2


def save_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for k, t in tensors.items():
        b = t.contiguous().numpy().tobytes()
        header[k] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b); off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h))); f.write(h)
        for b in blobs: f.write(b)


def main():
    out = sys.argv[1]
    torch.manual_seed(0)
    net = NCSNv2(3, 32, 4)
    levels = 10
    sigmas = torch.tensor([math.exp(math.log(1.0) + i * (math.log(0.01) - math.log(1.0)) / (levels - 1)) for i in range(levels)])
    net.register_buffer("sigmas", sigmas)
    model = torch.nn.DataParallel(net)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.rand(2, 3, 32, 32)
    loss = model(x).square().mean()
    loss.backward(); opt.step()
    shadow = {k: p.detach().clone() * 0.5 for k, p in model.named_parameters()}  # EMAHelper.state_dict(): parameters only
    states = [model.state_dict(), opt.state_dict(), 3, 1234, shadow]
    torch.save(states, f"{out}/ncsnv2-official-tiny.pth")
    with torch.no_grad():
        h = net(x)
    raw = {k: v for k, v in net.state_dict().items() if k != "sigmas"}
    save_safetensors(f"{out}/ncsnv2-official-tiny.expected.safetensors", {**{"raw." + k: v for k, v in raw.items()}, "x": x, "h_x": h})
    print(f"wrote {out}/ncsnv2-official-tiny.pth (torch {torch.__version__}) and the expected values")


if __name__ == "__main__":
    main()
