#!/usr/bin/python3
"""The paper's NCSNv2 (official ncsnv2 code's layers: InstanceNorm2dPlus via nn.InstanceNorm2d, MaxPool2d CRP,
bilinear MSF, ELU) and its purification loop, in PyTorch, to time "the paper's PyTorch code" on this machine.

It first checks that the network computes the reference h(x) of ../shared/reference (so it is the same network),
then times (a) the forward pass and (b) the research code's purification: S*batch images, T steps, two network
calls per step on every image (the research code did not skip stopped images).

usage: python3 paper_ncsnv2.py REFERENCE_DIR [threads] [ngf] [batch] [S] [T]
"""
import json, struct, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        dt = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64}[v["dtype"]]
        buf = bytearray(data[a:b])
        out[k] = (torch.frombuffer(buf, dtype=dt) if buf else torch.zeros(0, dtype=dt)).reshape(v["shape"]).clone()
    return out


class InstanceNorm2dPlus(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.instance_norm = nn.InstanceNorm2d(c, affine=False, track_running_stats=False)
        self.alpha = nn.Parameter(torch.ones(c)); self.gamma = nn.Parameter(torch.ones(c)); self.beta = nn.Parameter(torch.zeros(c))
        self.c = c

    def forward(self, x):
        means = torch.mean(x, dim=(2, 3))
        m = torch.mean(means, dim=-1, keepdim=True)
        v = torch.var(means, dim=-1, keepdim=True)
        means = (means - m) / torch.sqrt(v + 1e-5)
        h = self.instance_norm(x)
        h = h + means[..., None, None] * self.alpha[..., None, None]
        return self.gamma.view(-1, self.c, 1, 1) * h + self.beta.view(-1, self.c, 1, 1)


class ConvMeanPool(nn.Module):
    def __init__(self, i, o, k=3, adjust_padding=False):
        super().__init__()
        conv = nn.Conv2d(i, o, k, stride=1, padding=k // 2, bias=True)
        self.conv = conv if not adjust_padding else nn.Sequential(nn.ZeroPad2d((1, 0, 1, 0)), conv)

    def forward(self, x):
        o = self.conv(x)
        return sum([o[:, :, ::2, ::2], o[:, :, 1::2, ::2], o[:, :, ::2, 1::2], o[:, :, 1::2, 1::2]]) / 4.


def dil(i, o, d):
    return nn.Conv2d(i, o, 3, padding=d, dilation=d)


class ResidualBlock(nn.Module):
    def __init__(self, i, o, down, dilation=1, adjust_padding=False):
        super().__init__()
        self.normalize1 = InstanceNorm2dPlus(i)
        self.shortcut = None
        if down:
            if dilation > 1:
                self.conv1 = dil(i, i, dilation); self.conv2 = dil(i, o, dilation); self.shortcut = dil(i, o, dilation)
            else:
                self.conv1 = nn.Conv2d(i, i, 3, padding=1); self.conv2 = ConvMeanPool(i, o, 3, adjust_padding)
                self.shortcut = ConvMeanPool(i, o, 1, adjust_padding)
            self.normalize2 = InstanceNorm2dPlus(i)
        else:
            self.conv1 = dil(i, o, dilation) if dilation > 1 else nn.Conv2d(i, o, 3, padding=1)
            self.conv2 = dil(o, o, dilation) if dilation > 1 else nn.Conv2d(o, o, 3, padding=1)
            self.normalize2 = InstanceNorm2dPlus(o)
            if i != o:
                self.shortcut = dil(i, o, dilation) if dilation > 1 else nn.Conv2d(i, o, 1)

    def forward(self, x):
        h = self.conv1(F.elu(self.normalize1(x)))
        h = self.conv2(F.elu(self.normalize2(h)))
        return (x if self.shortcut is None else self.shortcut(x)) + h


class RCU(nn.Module):
    def __init__(self, c, nb, ns):
        super().__init__()
        self.nb, self.ns = nb, ns
        for i in range(nb):
            for j in range(ns):
                setattr(self, f"{i + 1}_{j + 1}_conv", nn.Conv2d(c, c, 3, padding=1, bias=False))

    def forward(self, x):
        for i in range(self.nb):
            r = x
            for j in range(self.ns):
                x = getattr(self, f"{i + 1}_{j + 1}_conv")(F.elu(x))
            x = x + r
        return x


class CRP(nn.Module):
    def __init__(self, c, n):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(c, c, 3, padding=1, bias=False) for _ in range(n)])
        self.pool = nn.MaxPool2d(5, 1, 2)

    def forward(self, x):
        x = F.elu(x); path = x
        for c in self.convs:
            path = c(self.pool(path)); x = path + x
        return x


class MSF(nn.Module):
    def __init__(self, ins, c):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(p, c, 3, padding=1) for p in ins])

    def forward(self, xs, shape):
        s = None
        for i, c in enumerate(self.convs):
            h = F.interpolate(c(xs[i]), size=shape, mode="bilinear", align_corners=True)
            s = h if s is None else s + h
        return s


class Refine(nn.Module):
    def __init__(self, ins, c, start=False, end=False):
        super().__init__()
        self.adapt_convs = nn.ModuleList([RCU(p, 2, 2) for p in ins])
        self.output_convs = RCU(c, 3 if end else 1, 2)
        self.msf = None if start else MSF(ins, c)
        self.crp = CRP(c, 2)

    def forward(self, xs, shape):
        hs = [a(x) for a, x in zip(self.adapt_convs, xs)]
        h = self.msf(hs, shape) if self.msf is not None else hs[0]
        return self.output_convs(self.crp(h))


class NCSNv2(nn.Module):
    def __init__(self, c, size, ngf):
        super().__init__()
        self.begin_conv = nn.Conv2d(c, ngf, 3, padding=1)
        self.normalizer = InstanceNorm2dPlus(ngf)
        self.end_conv = nn.Conv2d(ngf, c, 3, padding=1)
        self.res1 = nn.ModuleList([ResidualBlock(ngf, ngf, False), ResidualBlock(ngf, ngf, False)])
        self.res2 = nn.ModuleList([ResidualBlock(ngf, 2 * ngf, True), ResidualBlock(2 * ngf, 2 * ngf, False)])
        self.res3 = nn.ModuleList([ResidualBlock(2 * ngf, 2 * ngf, True, 2), ResidualBlock(2 * ngf, 2 * ngf, False, 2)])
        self.res4 = nn.ModuleList([ResidualBlock(2 * ngf, 2 * ngf, True, 4, size == 28), ResidualBlock(2 * ngf, 2 * ngf, False, 4)])
        self.refine1 = Refine([2 * ngf], 2 * ngf, start=True)
        self.refine2 = Refine([2 * ngf, 2 * ngf], 2 * ngf)
        self.refine3 = Refine([2 * ngf, 2 * ngf], ngf)
        self.refine4 = Refine([ngf, ngf], ngf, end=True)

    def forward(self, x):
        o = self.begin_conv(2 * x - 1.)
        l1 = o
        for b in self.res1: l1 = b(l1)
        l2 = l1
        for b in self.res2: l2 = b(l2)
        l3 = l2
        for b in self.res3: l3 = b(l3)
        l4 = l3
        for b in self.res4: l4 = b(l4)
        r1 = self.refine1([l4], l4.shape[2:])
        r2 = self.refine2([l3, r1], l3.shape[2:])
        r3 = self.refine3([l2, r2], l2.shape[2:])
        o = self.refine4([l1, r3], l1.shape[2:])
        return self.end_conv(F.elu(self.normalizer(o)))


def purify_research_code(net, x, sigma=0.25, T=10, lam=0.05, delta=1e-3, amin=1e-5, amax=0.1, tau=1e-3):
    """The research code's loop: every image gets both network calls at every step (stopped ones are masked)."""
    x = torch.clamp(x + sigma * torch.randn_like(x), 0, 1)
    running = torch.ones(x.shape[0], 1, 1, 1)
    for _ in range(T):
        g = net(x)
        g2 = net(x + delta * g)
        z = (g * g2).sum((1, 2, 3), keepdim=True) / (g * g).sum((1, 2, 3), keepdim=True)
        a = torch.clamp(lam * delta / (1 - z), amin, amax) * running
        running = running * (a > tau).float()
        x = torch.clamp(x + a * g, 0, 1)
    return x


def main():
    ref = sys.argv[1]
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    ngf = int(sys.argv[3]) if len(sys.argv) > 3 else 16
    batch = int(sys.argv[4]) if len(sys.argv) > 4 else 100
    S = int(sys.argv[5]) if len(sys.argv) > 5 else 10
    T = int(sys.argv[6]) if len(sys.argv) > 6 else 10
    torch.set_num_threads(threads)
    f = load_safetensors(f"{ref}/ncsnv2_mnist_ngf16_a.safetensors")
    net = NCSNv2(1, 28, 16).eval()
    sd = {k[len("score."):]: v for k, v in f.items() if k.startswith("score.") and k != "score.sigmas"}
    net.load_state_dict(sd)
    with torch.no_grad():
        d = (net(f["x"]) - f["h_x"]).abs().max().item()
    print(f"# torch {torch.__version__}, threads {torch.get_num_threads()}; parity with reference h(x): max |diff| {d:.2e}")
    assert d < 1e-4
    net = NCSNv2(1, 28, ngf).eval() if ngf != 16 else net
    x = torch.rand(S * batch, 1, 28, 28)
    with torch.no_grad():
        net(x[:64])
        t = time.time(); reps = 3
        for _ in range(reps): net(x)
        fwd = reps * x.shape[0] / (time.time() - t)
        print(f"paper-network forward ngf={ngf} batch={x.shape[0]}: {fwd:.1f} images/s")
        # the S runs as one batch of S*batch images, and as S sequential runs of `batch` images; the faster counts
        t = time.time(); purify_research_code(net, x, T=T); dt1 = time.time() - t
        t = time.time()
        for s in range(S): purify_research_code(net, x[s * batch:(s + 1) * batch], T=T)
        dt2 = time.time() - t
        for name, dt in (("one batch of S*batch", dt1), ("S sequential runs", dt2)):
            print(f"paper-code purification ngf={ngf} S={S} T={T} batch={batch} ({name}): {batch / dt:.3f} defended images/s "
                  f"({S * batch / dt:.1f} purifications/s, {2 * T} network calls each)")


if __name__ == "__main__":
    main()
