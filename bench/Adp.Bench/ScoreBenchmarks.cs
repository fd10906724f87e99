using System.Diagnostics;
using Adp.Data;
using Adp.Models;
using Adp.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Adp.Bench;

public static class ScoreBenchmarks
{
    private static int Int(Dictionary<string, string> kv, string key, int dflt) => kv.TryGetValue(key, out var v) ? int.Parse(v) : dflt;

    /// <summary>DSM training images/s at a configuration (default: the shipped 28×28 one, ngf 16, batch 64).</summary>
    public static void DsmTraining(Dictionary<string, string> kv)
    {
        int ngf = Int(kv, "ngf", 16), batch = Int(kv, "batch", 64), iters = Int(kv, "iters", 20), warm = 3;
        var cfg = new ScoreModelConfig(1, 28, ngf, 1.0, 0.01, 10);
        using var net = new Ncsnv2(cfg);
        using var sigmas = tensor(cfg.Sigmas().Select(s => (float)s).ToArray());
        var opt = optim.Adam(net.parameters(), 1e-4);
        using var g = new Generator(0, CPU);
        var sw = new Stopwatch();
        for (int i = 0; i < warm + iters; i++)
        {
            if (i == warm) sw.Start();
            using var scope = NewDisposeScope();
            var x = rand([batch, 1, 28, 28], generator: g);
            opt.zero_grad();
            using (Adp.NativeRuntime.Backward()) DsmLoss.Sample(net, x, sigmas, g).backward();
            NativeRuntime.WithoutCollection(() => opt.step());  // TorchSharp's step converts scalars implicitly
        }
        double ips = iters * batch / sw.Elapsed.TotalSeconds;
        Console.WriteLine($"dsm-train ngf={ngf} batch={batch} 28x28x1: {ips:F1} images/s ({sw.Elapsed.TotalMilliseconds / iters:F0} ms/iteration)");
    }

    /// <summary>Score-network forward images/s under no_grad.</summary>
    public static void Forward(Dictionary<string, string> kv)
    {
        int ngf = Int(kv, "ngf", 16), batch = Int(kv, "batch", 100), iters = Int(kv, "iters", 10);
        // size=32 channels=3: the CIFAR-10 shape (default MNIST's 28×28×1)
        int size = Int(kv, "size", 28), channels = Int(kv, "channels", 1);
        // dtype=bf16: weights and input in bfloat16; layout=nchw: the NCHW layout of the first version
        bool bf16 = kv.GetValueOrDefault("dtype") == "bf16", nchw = kv.GetValueOrDefault("layout") == "nchw";
        using var net = new Ncsnv2(new ScoreModelConfig(channels, size, ngf, 1.0, 0.01, 10)) { ChannelsLast = !nchw };
        net.eval();
        using var _ = no_grad();
        var x = rand(batch, channels, size, size);
        if (bf16) { net.to(ScalarType.BFloat16); x = x.to(ScalarType.BFloat16); }
        if (kv.TryGetValue("chunks", out var chunkList))
        {
            // chunks=8,16,64 rounds=R: `batch` images through the network in chunks of each size, the sizes interleaved round by
            // round (so machine-load drift hits all alike); the median images/s per chunk size (AdaptiveStepPurifier.NetworkChunk).
            int[] chunks = chunkList.Split(',').Select(int.Parse).ToArray();
            int rounds = Int(kv, "rounds", 5);
            var rates = chunks.ToDictionary(c => c, _ => new List<double>());
            for (int r = -1; r < rounds; r++)   // round -1 warms every size up
                foreach (int c in chunks)
                {
                    var sw0 = Stopwatch.StartNew();
                    for (int start = 0; start < batch; start += c) net.forward(x.narrow(0, start, Math.Min(c, batch - start))).Dispose();
                    if (r >= 0) rates[c].Add(batch / sw0.Elapsed.TotalSeconds);
                }
            foreach (int c in chunks)
            {
                var sorted = rates[c].OrderBy(v => v).ToList();
                Console.WriteLine($"score-forward ngf={ngf} {size}x{size}x{channels} chunk={c}: median {sorted[sorted.Count / 2]:F1} images/s " +
                                  $"(range {sorted[0]:F1}–{sorted[^1]:F1}, {rounds} rounds of {batch} images)");
            }
            return;
        }
        for (int i = 0; i < 2; i++) net.forward(x).Dispose();
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < iters; i++) net.forward(x).Dispose();
        Console.WriteLine($"score-forward ngf={ngf} batch={batch} {(bf16 ? "bf16" : "fp32")} {(nchw ? "NCHW" : "channels-last")} {size}x{size}x{channels}: {iters * batch / sw.Elapsed.TotalSeconds:F1} images/s");
    }
}

public static class OpBenchmarks
{
    private static double Time(Func<Tensor> f, int iters = 10)
    {
        for (int i = 0; i < 2; i++) f().Dispose();
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < iters; i++) f().Dispose();
        return sw.Elapsed.TotalMilliseconds / iters;
    }

    private static Tensor FusedNorm(Tensor x)
    {
        using var scope = NewDisposeScope();
        var (xv, xm) = torch.var_mean(x, [2, 3], unbiased: false, keepdim: true);
        var a = (xv + 1e-5).rsqrt();
        var b = -xm * a;
        return torch.addcmul(b, x, a, 1.0).MoveToOuterDisposeScope();
    }

    private static Tensor ShiftMax(Tensor x)
    {
        using var scope = NewDisposeScope();
        long h = x.shape[2], w = x.shape[3];
        var p = nn.functional.pad(x, [2, 2, 2, 2], value: double.NegativeInfinity);
        var r = p[.., .., .., 0..(int)w];
        for (int k = 1; k < 5; k++) r = torch.maximum(r, p[.., .., .., k..(int)(k + w)]);
        var c = r[.., .., 0..(int)h, ..];
        for (int k = 1; k < 5; k++) c = torch.maximum(c, r[.., .., k..(int)(k + h), ..]);
        return c.MoveToOuterDisposeScope();
    }

    public static void Ops(Dictionary<string, string> kv)
    {
        using var _ = no_grad();
        int n = 500;
        foreach (var cl in new[] { false, true })
        {
            Tensor Fmt(Tensor t) => cl ? t.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2) : t;
            var x = Fmt(randn(n, 16, 28, 28));
            var x2 = Fmt(randn(n, 32, 14, 14));
            var w = Fmt(randn(16, 16, 3, 3)); var w2 = Fmt(randn(32, 32, 3, 3));
            var norm = new Adp.Models.InstanceNormPlusPlus(16);
            Console.WriteLine($"cl={cl}: conv16@28 {Time(() => nn.functional.conv2d(x, w, padding: [1, 1])):F1} ms, conv32@14 dil2 {Time(() => nn.functional.conv2d(x2, w2, padding: [2, 2], dilation: [2, 2])):F1} ms, " +
                $"conv32@14 dil4 {Time(() => nn.functional.conv2d(x2, w2, padding: [4, 4], dilation: [4, 4])):F1} ms, " +
                $"in++16@28 {Time(() => norm.forward(x)):F1} ms, elu16@28 {Time(() => nn.functional.elu(x, 1.0, false)):F1} ms, add {Time(() => x + x):F1} ms, " +
                $"in++fused {Time(() => FusedNorm(x)):F1} ms, varmean {Time(() => torch.var_mean(x, [2, 3], unbiased: false, keepdim: true).Item1):F1} ms, sep-maxpool {Time(() => nn.functional.max_pool2d(nn.functional.max_pool2d(x, [1, 5], [1, 1], [0, 2]), [5, 1], [1, 1], [2, 0])):F1} ms, " +
                $"instnorm {Time(() => nn.functional.instance_norm(x, eps: 1e-5)):F1} ms, groupnorm {Time(() => nn.functional.group_norm(x, 16, eps: 1e-5)):F1} ms, mean23 {Time(() => x.mean([2, 3])):F1} ms, " +
                $"shiftmax {Time(() => ShiftMax(x)):F1} ms, in++new {Time(() => norm.forward(x)):F1} ms, " +
                $"maxpool5 {Time(() => nn.functional.max_pool2d(x, 5, 1, 2)):F1} ms, interp {Time(() => nn.functional.interpolate(x2, size: [28, 28], mode: InterpolationMode.Bilinear, align_corners: true)):F1} ms");
        }
    }
}

public static class DeterminismCheck
{
    public static void Run(Dictionary<string, string> kv)
    {
        int ngf = 8;
        torch.manual_seed(0);
        using var net = new Ncsnv2(new ScoreModelConfig(1, 28, ngf, 1.0, 0.01, 10));
        using var x = rand(16, 1, 28, 28, generator: new Generator(1));
        List<(string, Tensor)> Grads()
        {
            net.zero_grad();
            using (Adp.NativeRuntime.Backward()) net.forward(x).square().sum().backward();
            return net.named_parameters().Select(p => (p.name, p.parameter.grad!.clone())).ToList();
        }
        var a = Grads();
        using (no_grad())
        {
            var o = net.forward(x).contiguous().data<float>().ToArray();
            var bytes = new byte[o.Length * 4]; Buffer.BlockCopy(o, 0, bytes, 0, bytes.Length);
            var gb = a.SelectMany(p => p.Item2.contiguous().data<float>().ToArray()).ToArray();
            var gbytes = new byte[gb.Length * 4]; Buffer.BlockCopy(gb, 0, gbytes, 0, gbytes.Length);
            Console.WriteLine($"forward hash {Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(bytes))[..16]} grad hash {Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(gbytes))[..16]}");
        }
        if (kv.ContainsKey("hashonly")) return;
        for (int rep = 0; rep < 10; rep++)
        {
            var b = Grads();
            var diff = a.Zip(b).Where(p => (p.First.Item2 - p.Second.Item2).abs().max().item<float>() != 0).Select(p => p.First.Item1).ToList();
            Console.WriteLine($"rep {rep}: {diff.Count} grads differ {string.Join(",", diff.Take(5))}");
        }
    }
}

/// <summary>phases: where a full-gradient step's network time goes: the score network's forward pass without graph (the
/// step-size calls), with graph (the checkpoint's recomputation) and the input-gradient backward pass (weights frozen, as attacks
/// run it), per call of n=16 rows (the CIFAR-10 chunk), reps=10 calls, two rounds. Keys: score=PATH, n, reps.</summary>
public static class NetworkPhases
{
    public static void Run(Dictionary<string, string> kv)
    {
        var (net, info) = ScoreModelFile.Load(kv.GetValueOrDefault("score", "models/cifar10-score.ckpt"));
        foreach (var p in net.parameters()) p.requires_grad_(false);
        net.eval();
        int n = int.Parse(kv.GetValueOrDefault("n", "16")), reps = int.Parse(kv.GetValueOrDefault("reps", "10"));
        var x = rand(n, info.Config.Channels, info.Config.ImageSize, info.Config.ImageSize);
        var v = randn(x.shape);
        for (int round = 0; round < 2; round++)
        {
            double fNo = 0, fGraph = 0, back = 0;
            for (int r = 0; r < reps; r++)
            {
                using var scope = NewDisposeScope();
                var sw = System.Diagnostics.Stopwatch.StartNew();
                using (no_grad()) net.forward(x);
                fNo += sw.Elapsed.TotalMilliseconds;
                sw.Restart();
                var xr = x.detach().requires_grad_(true);
                var y = net.forward(xr);
                fGraph += sw.Elapsed.TotalMilliseconds;
                sw.Restart();
                using (Adp.NativeRuntime.Backward()) autograd.grad([y], [xr], [v]);
                back += sw.Elapsed.TotalMilliseconds;
            }
            Console.WriteLine($"ngf={info.Config.Ngf} n={n}: forward no-grad {fNo / reps:F1} ms, " +
                              $"forward with graph {fGraph / reps:F1} ms, " +
                              $"backward {back / reps:F1} ms");
        }
    }
}
