using Adp.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Adp.Bench;

/// <summary>
/// onednn-probe: a score network's gradients in float32, as this process computes them (run with ADP_MKLDNN=1 to compute them
/// with oneDNN), against the same network in float64 (libtorch has no oneDNN kernels for doubles), on random inputs: the
/// count of batches with non-finite gradients and the largest relative error (max |g32 − g64| / max |g64|) per batch.
/// Keys: score=PATH (else a random NCSNv2: ngf=8 size=28 channels=1), iters=50, batch=16, grads=input|weights|both.
/// </summary>
public static class OneDnnProbe
{
    public static void Run(Dictionary<string, string> kv)
    {
        string? score = kv.GetValueOrDefault("score");
        int iters = int.Parse(kv.GetValueOrDefault("iters", "50")), batch = int.Parse(kv.GetValueOrDefault("batch", "16"));
        string grads = kv.GetValueOrDefault("grads", "input");
        if (grads is not ("input" or "weights" or "both")) throw new AdpException($"grads={grads}: expected input, weights or both");
        Ncsnv2 net;
        if (score is not null) net = ScoreModelFile.Load(score).Net;
        else
        {
            manual_seed(0);
            net = new Ncsnv2(new ScoreModelConfig(int.Parse(kv.GetValueOrDefault("channels", "1")),
                int.Parse(kv.GetValueOrDefault("size", "28")), int.Parse(kv.GetValueOrDefault("ngf", "8"))));
        }
        var cfg = net.Config;
        var net64 = new Ncsnv2(cfg);
        net64.load_state_dict(net.state_dict());
        net64.to(ScalarType.Float64);
        net.eval();
        net64.eval();
        bool wantW = grads != "input", wantX = grads != "weights";
        foreach (var p in net.parameters().Concat(net64.parameters())) p.requires_grad_(wantW);
        var gen = new Generator(1, CPU);
        int nonFinite = 0, bad = 0;
        double worst = 0, forwardWorst = 0;
        for (int i = 0; i < iters; i++)
        {
            using var scope = NewDisposeScope();
            var x = rand(new long[] { batch, cfg.Channels, cfg.ImageSize, cfg.ImageSize }, generator: gen);
            var v = randn(x.shape, generator: gen);
            var x32 = x.detach().requires_grad_(wantX);
            var x64 = x.to(ScalarType.Float64).detach().requires_grad_(wantX);
            var inputs32 = new List<Tensor>();
            var inputs64 = new List<Tensor>();
            if (wantX) { inputs32.Add(x32); inputs64.Add(x64); }
            if (wantW) { inputs32.AddRange(net.parameters()); inputs64.AddRange(net64.parameters()); }
            var h32 = net.forward(x32);
            IList<Tensor> g32;
            using (Adp.NativeRuntime.Backward()) g32 = autograd.grad([h32.mul(v).sum()], inputs32);
            var h64 = net64.forward(x64);
            var g64 = autograd.grad([h64.mul(v.to(ScalarType.Float64)).sum()], inputs64);
            forwardWorst = Math.Max(forwardWorst, RelativeError(h32.detach(), h64.detach()));
            double batchWorst = 0;
            bool anyNonFinite = false;
            for (int k = 0; k < g32.Count; k++)
            {
                if (!isfinite(g32[k]).all().item<bool>()) anyNonFinite = true;
                else batchWorst = Math.Max(batchWorst, RelativeError(g32[k], g64[k]));
            }
            if (anyNonFinite) nonFinite++;
            if (batchWorst > 1e-4) bad++;
            worst = Math.Max(worst, batchWorst);
            if (anyNonFinite || batchWorst > 1e-4)
                Console.WriteLine($"batch {i}: non-finite {anyNonFinite}, max relative error {batchWorst:G3}");
        }
        Console.WriteLine($"onednn-probe ngf={cfg.Ngf} {cfg.Channels}×{cfg.ImageSize}² batch={batch} grads={grads} " +
                          $"oneDNN(now)={Adp.NativeRuntime.MkldnnEnabled()}: {iters} batches, non-finite {nonFinite}, " +
                          $"relative error > 1e-4 in {bad}, worst finite {worst:G3}; forward {forwardWorst:G3}");
    }

    /// <summary>max |a − b| / max |b|, with a (float32) widened to b's float64.</summary>
    internal static double RelativeError(Tensor a, Tensor b) =>
        (a.to(ScalarType.Float64) - b).abs().max().item<double>() / (b.abs().max().item<double>() + 1e-300);
}

/// <summary>
/// onednn-ops: one operation's input gradient in float32 (this process's oneDNN mode) against float64, for convolutions of
/// every pair of channel counts in channels=1,3,8,12,16,24,32,48,64, at 7/14/16/28/32 pixels, 3×3 with dilation 1/2/4, 5×5,
/// 1×1, strided 3×3 and 1×1, and for 5×5 max and 2×2 average pooling; prints the cases whose relative error exceeds 1e-4 (all
/// with all=1) and their count. Keys: batch=16, reps=3 (random draws per case; the worst counts).
/// </summary>
public static class OneDnnOpProbe
{
    public static void Run(Dictionary<string, string> kv)
    {
        int batch = int.Parse(kv.GetValueOrDefault("batch", "16")), reps = int.Parse(kv.GetValueOrDefault("reps", "3"));
        bool all = kv.GetValueOrDefault("all") == "1";
        var gen = new Generator(3, CPU);
        var cases = new List<(string Name, long C, long Size, Func<Tensor, Tensor, Tensor> Op, long[] W)>();
        var channels = kv.GetValueOrDefault("channels", "1,3,8,12,16,24,32,48,64").Split(',').Select(long.Parse).ToArray();
        var kernels = new[] { (3L, 1L, 1L), (3L, 2L, 1L), (3L, 4L, 1L), (1L, 1L, 1L), (5L, 1L, 1L), (3L, 1L, 2L), (1L, 1L, 2L) };
        foreach (long ci in channels)
            foreach (long co in channels)
                foreach (long size in new long[] { 7, 14, 16, 28, 32 })
                {
                    foreach (var (k, d, st) in kernels)
                    {
                        long[] pad = [d * (k / 2), d * (k / 2)];
                        cases.Add(($"conv {ci}->{co} k{k} d{d} s{st}", ci, size,
                            (x, w) => nn.functional.conv2d(x, w, strides: [st, st], padding: pad, dilation: [d, d]),
                            new long[] { co, ci, k, k }));
                    }
                    if (ci != co) continue;
                    cases.Add(("maxpool5", ci, size, (x, _) => nn.functional.max_pool2d(x, 5, 1, 2), Array.Empty<long>()));
                    cases.Add(("avgpool2", ci, size, (x, _) => nn.functional.avg_pool2d(x, 2), Array.Empty<long>()));
                }
        int bad = 0;
        foreach (var (name, c, size, op, wShape) in cases)
        {
            double worst = 0;
            for (int r = 0; r < reps; r++)
            {
                using var scope = NewDisposeScope();
                var x = randn(new long[] { batch, c, size, size }, generator: gen);
                var w = wShape.Length > 0 ? randn(wShape, generator: gen) : empty(0);
                var x32 = x.detach().requires_grad_(true);
                var y32 = op(x32, w);
                var v = randn(y32.shape, generator: gen);
                Tensor g32;
                using (Adp.NativeRuntime.Backward()) g32 = autograd.grad([y32.mul(v).sum()], [x32])[0];
                var x64 = x.to(ScalarType.Float64).requires_grad_(true);
                var g64 = autograd.grad([op(x64, w.to(ScalarType.Float64)).mul(v.to(ScalarType.Float64)).sum()], [x64])[0];
                double err = OneDnnProbe.RelativeError(g32, g64);
                worst = Math.Max(worst, double.IsNaN(err) ? double.PositiveInfinity : err);
            }
            if (worst > 1e-4) bad++;
            if (worst > 1e-4 || all) Console.WriteLine($"{name} at {size}x{size}, batch {batch}: worst relative error {worst:G3}");
        }
        Console.WriteLine($"onednn-ops: {cases.Count} cases, {bad} with a relative error above 1e-4, " +
                          $"oneDNN(now)={Adp.NativeRuntime.MkldnnEnabled()}");
    }
}
