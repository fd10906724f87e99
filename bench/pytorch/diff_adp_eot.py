#!/usr/bin/python3
"""The peer for `adp-bench fullgrad`: Croce et al.'s differentiable ADP (`diff_adp` in
fra31/evaluating-adaptive-test-time-defenses, yoon_2021/eval_tta.py) with EOT gradients as their APGD loop computes
them (one diff_adp call per EOT sample, each with its own noise, full autograd graph through the T purification steps,
the step size computed without gradient), on the paper's NCSNv2 (paper_ncsnv2.py) and the small CNN, loaded with the
SAME weights as the adp checkpoints. Times one attack iteration (the EOT gradient of a batch) and reports the peak
memory of the process, for the comparison of issue #11 (target: adp at least 2x faster per iteration at no more
than a quarter of the peak memory).

usage: python3 diff_adp_eot.py SCORE.ckpt CLASSIFIER.ckpt [threads] [eot] [batch] [data folder: MNIST-format idx.gz test
images, or cifar-10-batches-bin] [iters: iterations timed in this process, each reported; needs the data folder].
The classifier is adp's small CNN or its CIFAR ResNet (read from the checkpoint's config).
       python3 diff_adp_eot.py --accuracy CLASSIFIER.ckpt DATA N   (checks the port: clean accuracy on the first N test images)
Runs on Debian's python3-torch (1.13), whose CPU kernels are slower than libtorch 2.10's: say so when comparing.
"""
import gzip, json, resource, struct, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F
from paper_ncsnv2 import NCSNv2


def load_checkpoint(path):
    """An adp checkpoint (safetensors): tensors and metadata."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    out = {}
    for k, v in header.items():
        a, b = v["data_offsets"]
        dt = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64, "U8": torch.uint8}[v["dtype"]]
        buf = bytearray(data[a:b])
        out[k] = (torch.frombuffer(buf, dtype=dt) if buf else torch.zeros(0, dtype=dt)).reshape(v["shape"]).clone()
    return out, meta


class SmallCnn(nn.Module):
    """conv5x5-32 -> pool -> conv5x5-64 -> pool -> FC1024 -> FC10 (adp's SmallCnn, no input normalization)."""
    def __init__(self, c=1, size=28, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(c, 32, 5, padding=2)
        self.conv2 = nn.Conv2d(32, 64, 5, padding=2)
        self.fc1 = nn.Linear(64 * (size // 4) ** 2, 1024)
        self.fc2 = nn.Linear(1024, classes)

    def forward(self, x):
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)
        return self.fc2(F.relu(self.fc1(h.flatten(1))))


class BasicBlock(nn.Module):
    """adp's BasicBlock (He et al., post-activation, 1x1 conv + BN shortcut); same parameter names."""
    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        o = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(o)) + self.shortcut(x))


class CifarResNet(nn.Module):
    """adp's CifarResNet (3x3 stem, four stages, input normalization inside); depth 18 only."""
    def __init__(self, cfg):
        super().__init__()
        w, c = cfg["Width"], cfg["Channels"]
        self.register_buffer("mean", torch.tensor(cfg["Mean"]).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(cfg["Std"]).view(1, -1, 1, 1))
        self.conv1 = nn.Conv2d(c, w, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        cin = w
        layers = []
        for planes, stride in [(w, 1), (2 * w, 2), (4 * w, 2), (8 * w, 2)]:
            layers.append(nn.Sequential(BasicBlock(cin, planes, stride), BasicBlock(planes, planes, 1)))
            cin = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.linear = nn.Linear(8 * w, cfg["NumClasses"])

    def forward(self, x):
        o = F.relu(self.bn1(self.conv1((x - self.mean) / self.std)))
        o = self.layer4(self.layer3(self.layer2(self.layer1(o))))
        return self.linear(F.adaptive_avg_pool2d(o, 1).flatten(1))


def diff_adp(x, ebm, clf, sigma=0.25, max_iter=10, lam=0.05, lr_min=1.0e-3, min_step_lr=1e-5, stopping_alpha=1e-3):
    """Croce et al.'s diff_adp (eval_tta.py), with the identity range transforms the paper's config uses."""
    with torch.no_grad():
        init_noise = (x + torch.randn_like(x) * sigma).clamp(0., 1.) - x
    x_pur = x + init_noise
    cont = torch.ones(x_pur.shape[0], dtype=torch.bool)
    for _ in range(max_iter):
        grad = ebm(x_pur)
        with torch.no_grad():
            grad_eps = ebm(x_pur + lr_min * grad)
            z1 = torch.bmm(grad.view(grad.shape[0], 1, -1), grad_eps.view(grad_eps.shape[0], -1, 1))
            z2 = torch.bmm(grad.view(grad.shape[0], 1, -1), grad.view(grad.shape[0], -1, 1))
            z = torch.div(z1, z2)
            step = torch.clamp(lam * lr_min / (1. - z), min=min_step_lr, max=min_step_lr * 10000.).view(-1)
            cont = torch.logical_and(cont, step > stopping_alpha)
            if torch.sum(cont) == 0:
                break
            step *= cont
        x_pur = x_pur + grad * step.view(-1, 1, 1, 1)
        x_pur.clamp_(0., 1.)
    return clf(x_pur)


def eot_gradient(x, y, ebm, clf, eot):
    """What their APGD does per iteration with eot_iter > 0: sum of per-sample gradients of the CE loss."""
    grad = torch.zeros_like(x)
    for _ in range(eot):
        xr = x.clone().requires_grad_()
        loss = F.cross_entropy(diff_adp(xr, ebm, clf), y, reduction="none").sum()
        grad += torch.autograd.grad(loss, [xr])[0].detach()
    return grad / eot


def mnist_test(path, n):
    with gzip.open(path + "/t10k-images-idx3-ubyte.gz") as f:
        f.read(16); x = torch.frombuffer(bytearray(f.read(n * 784)), dtype=torch.uint8).float().view(n, 1, 28, 28) / 255
    with gzip.open(path + "/t10k-labels-idx1-ubyte.gz") as f:
        f.read(8); y = torch.frombuffer(bytearray(f.read(n)), dtype=torch.uint8).long()
    return x, y


def cifar_test(path, n):
    """The first n records of test_batch*.bin (1 label byte, then 3x32x32 channel-major pixels)."""
    import glob
    with open(sorted(glob.glob(path + "/test_batch*.bin"))[0], "rb") as f:
        raw = torch.frombuffer(bytearray(f.read(n * 3073)), dtype=torch.uint8).view(n, 3073)
    return raw[:, 1:].float().view(n, 3, 32, 32) / 255, raw[:, 0].long()


def load_classifier(clf_path):
    """adp's small CNN or CIFAR ResNet with the checkpoint's weights, in evaluation mode."""
    csd, cmeta = load_checkpoint(clf_path)
    ccfg = json.loads(cmeta["config"])
    state = {k[len("model."):]: v for k, v in csd.items() if k.startswith("model.")}
    if ccfg["Architecture"] == 2:  # ClassifierArchitecture.ResNet
        assert ccfg["Depth"] == 18 and ccfg.get("Mean") is not None, "only the depth-18 ResNet with input normalization is ported"
        clf = CifarResNet(ccfg)
        state["mean"], state["std"] = clf.mean, clf.std
    else:
        assert ccfg["Architecture"] == 0, "only the small CNN and the ResNet are ported"
        clf = SmallCnn(ccfg["Channels"], ccfg["ImageSize"], ccfg["NumClasses"])
    clf.load_state_dict(state)
    return clf.eval(), ccfg


def accuracy(clf_path, data, n):
    """Checks the port: clean accuracy of the classifier on the first n test images (compare `adp eval clean`)."""
    clf, ccfg = load_classifier(clf_path)
    x, y = (cifar_test if ccfg["Channels"] == 3 else mnist_test)(data, n)
    with torch.no_grad():
        acc = (clf(x).argmax(1) == y).float().mean().item()
    print(f"# torch {torch.__version__}; {clf_path}: clean accuracy {100 * acc:.2f}% on the first {n} test images")


def main():
    if sys.argv[1] == "--accuracy":  # usage: diff_adp_eot.py --accuracy CLASSIFIER.ckpt DATA N
        return accuracy(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    score_path, clf_path = sys.argv[1], sys.argv[2]
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    eot = int(sys.argv[4]) if len(sys.argv) > 4 else 20
    batch = int(sys.argv[5]) if len(sys.argv) > 5 else 8
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    sd, meta = load_checkpoint(score_path)
    cfg = json.loads(meta["config"])
    ebm = NCSNv2(cfg["Channels"], cfg["ImageSize"], cfg["Ngf"]).eval()
    ebm.load_state_dict({k[len("model."):]: v for k, v in sd.items() if k.startswith("model.")})
    clf, _ = load_classifier(clf_path)
    for p in list(ebm.parameters()) + list(clf.parameters()):
        p.requires_grad_(False)
    if len(sys.argv) > 6:
        x, y = (cifar_test if cfg["Channels"] == 3 else mnist_test)(sys.argv[6], batch)
    else:
        x, y = torch.rand(batch, cfg["Channels"], cfg["ImageSize"], cfg["ImageSize"]), torch.randint(0, 10, (batch,))
    # ITERS (7th argument, default 1): iterations in this process, each reported; the first also maps its pages fresh, later
    # ones run warm, as an attack's iterations after its first do.
    iters = int(sys.argv[7]) if len(sys.argv) > 7 else 1
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"# torch {torch.__version__}, threads {torch.get_num_threads()}")
    for _ in range(iters):
        t = time.time()
        g = eot_gradient(x, y, ebm, clf, eot)
        dt = time.time() - t
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"diff_adp EOT gradient (Croce et al.) ngf={cfg['Ngf']} EOT={eot} T=10 sigma=0.25 batch={batch}: "
              f"{dt / batch:.2f} s per image ({dt:.1f} s per batch), peak RSS {rss:.0f} MiB (before the attack {rss0:.0f} MiB), "
              f"|direction| {g.norm().item():.3g}", flush=True)


if __name__ == "__main__":
    main()
