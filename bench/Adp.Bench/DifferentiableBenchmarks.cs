using System.Diagnostics;
using Adp.Data;
using Adp.Models;
using Adp.Purification;
using static TorchSharp.torch;

namespace Adp.Bench;

public static class DifferentiableBenchmarks
{
    /// <summary>Peak resident memory of this process (VmHWM), in MiB.</summary>
    public static double PeakRssMiB()
    {
        var line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("VmHWM:"));
        return line is null ? double.NaN : double.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024;
    }

    /// <summary>Iterations of full-gradient PGD+EOT (the attack's gradient oracle with n_EOT fresh noise draws
    /// through the differentiable purifier, classifier included) at the paper's purifier settings: time per image
    /// and peak memory of each (iters=N, default 1; checkpointing=false keeps every step's graph).</summary>
    public static void FullGradientIteration(Dictionary<string, string> kv)
    {
        string score = kv.GetValueOrDefault("score", "models/mnist-score.ckpt");
        string clfPath = kv.GetValueOrDefault("classifier", "models/mnist-smallcnn.ckpt");
        int eot = int.Parse(kv.GetValueOrDefault("eot", "20")), batch = int.Parse(kv.GetValueOrDefault("batch", "32"));
        var (net, info) = ScoreModelFile.Load(score);
        var (clf, _) = ClassifierFile.Load(clfPath);
        foreach (var p in net.parameters().Concat(clf.parameters())) p.requires_grad_(false);
        using var test = DatasetLoader.Load(info.Dataset, Split.Test, kv.GetValueOrDefault("data"));
        var x = test.Images(0, batch);
        var y = test.Labels.narrow(0, 0, batch);
        bool batched = kv.GetValueOrDefault("batched", "true") == "true";
        var preset = PurifierPresets.Preset(kv.GetValueOrDefault("preset", "paper"));
        var settings = preset.Settings;
        // The preset's purifier (e.g. mnist's re-injection); checkpointing=false keeps every step's graph (ADP and re-injection).
        bool checkpointing = kv.GetValueOrDefault("checkpointing", "true") == "true";
        // chunk=N: images per network call (default AdaptiveStepPurifier.ChunkFor the network); plain ADP presets only.
        int chunk = int.Parse(kv.GetValueOrDefault("chunk", AdaptiveStepPurifier.ChunkFor(net).ToString()));
        if (kv.ContainsKey("chunk") && preset.EffectiveVariant.Kind != PurifierKind.Adp)
            throw new AdpException($"chunk=: applies to a plain ADP preset; this one runs {preset.EffectiveVariant.Key}");
        IDifferentiablePurifier purifier = preset.EffectiveVariant.Kind == PurifierKind.Adp
            ? new DifferentiablePurifier(net, settings) { Checkpointing = checkpointing, Chunk = chunk }
            : preset.EffectiveVariant.CreateDifferentiable(net, settings, checkpointing);
        // rows=N: rows per differentiable purification (default: the model's, the network chunk); rows=8,16,160: interleaved
        string? rowsArg = kv.GetValueOrDefault("rows");
        if (rowsArg is not null && rowsArg.Contains(','))
        {
            InterleavedRows(kv, clf, purifier, eot, x, y, rowsArg.Split(',').Select(int.Parse).ToArray());
            return;
        }
        int rows = rowsArg is null ? new Adp.Attacks.FullGradientEotModel(clf, purifier, eot).MaxBatch : int.Parse(rowsArg);
        var model = new Adp.Attacks.FullGradientEotModel(clf, purifier, eot) { BatchCopies = batched, MaxBatch = rows };
        double before = PeakRssMiB();
        // iters=N: N iterations in this process, each reported (the first one also maps the working set's pages fresh).
        int iters = int.Parse(kv.GetValueOrDefault("iters", "1"));
        for (int it = 0; it < iters; it++)
        {
            using var scope = NewDisposeScope();
            using var g = new Generator(0, CPU);
            var sw = Stopwatch.StartNew();
            var (loss, dir) = model.LossAndDirection(x, y, Adp.Attacks.AttackLoss.CrossEntropy, g);
            sw.Stop();
            string copies = batched ? $"batched (≤{model.MaxBatch} rows)" : "one at a time";
            Console.WriteLine($"full-gradient PGD+EOT iteration ngf={info.Config.Ngf} EOT={eot} {purifier.Describe()} batch={batch} " +
                              $"chunk={chunk} copies {copies}{(checkpointing ? "" : ", no checkpointing")}: " +
                              $"{sw.Elapsed.TotalSeconds / batch:F2} s per image ({sw.Elapsed.TotalSeconds:F1} s per batch), " +
                              $"peak RSS {PeakRssMiB():F0} MiB (before the attack {before:F0} MiB), " +
                              $"|direction| {dir.norm().item<float>():G3}");
        }
    }

    /// <summary>rows=8,16,160 rounds=R: the batched EOT gradient with each row limit (rows per differentiable purification;
    /// rows = batch is one copy at a time), the limits interleaved round by round so that machine-load drift (up to 2× between
    /// runs minutes apart on the 2-core machines) hits all alike; the median time per image per limit, and the largest
    /// difference of each direction from the first limit's (the same noise rows, so it should be float32 round-off only).
    /// Peak memory needs one process per setting (peak RSS only grows), so it is not reported here.</summary>
    private static void InterleavedRows(Dictionary<string, string> kv, nn.Module<Tensor, Tensor> clf, IDifferentiablePurifier purifier,
                                        int eot, Tensor x, Tensor y, int[] rowLimits)
    {
        int rounds = int.Parse(kv.GetValueOrDefault("rounds", "3"));
        long batch = x.shape[0];
        var times = rowLimits.ToDictionary(r => r, _ => new List<double>());
        var diffs = rowLimits.ToDictionary(r => r, _ => 0.0);
        Tensor? first = null;
        for (int round = 0; round < rounds; round++)
            foreach (int rows in rowLimits)
            {
                using var scope = NewDisposeScope();
                var model = new Adp.Attacks.FullGradientEotModel(clf, purifier, eot) { MaxBatch = rows };
                using var g = new Generator(0, CPU);
                var sw = Stopwatch.StartNew();
                var (_, dir) = model.LossAndDirection(x, y, Adp.Attacks.AttackLoss.CrossEntropy, g);
                sw.Stop();
                times[rows].Add(sw.Elapsed.TotalSeconds / batch);
                if (first is null) first = dir.MoveToOuterDisposeScope();
                else diffs[rows] = Math.Max(diffs[rows], (dir - first).abs().max().item<float>());
            }
        foreach (int rows in rowLimits)
        {
            var sorted = times[rows].OrderBy(v => v).ToList();
            Console.WriteLine($"full-gradient PGD+EOT iteration EOT={eot} {purifier.Describe()} batch={batch} ≤{rows} rows per purification: " +
                              $"median {sorted[sorted.Count / 2]:F2} s per image (range {sorted[0]:F2}–{sorted[^1]:F2}, {rounds} rounds), " +
                              $"max |direction − first| {diffs[rows]:G2} (|first| {first!.norm().item<float>():G3})");
        }
    }

    /// <summary>One forward+backward through the differentiable purifier (batch of test images): time and the
    /// process's peak memory. Run once per setting in a fresh process (peak memory only grows).</summary>
    public static void Gradient(Dictionary<string, string> kv)
    {
        string score = kv.GetValueOrDefault("score", "models/mnist-score.ckpt");
        int steps = int.Parse(kv.GetValueOrDefault("steps", "10")), batch = int.Parse(kv.GetValueOrDefault("batch", "100"));
        bool checkpointing = kv.GetValueOrDefault("checkpointing", "true") == "true";
        var (net, info) = ScoreModelFile.Load(score);
        foreach (var p in net.parameters()) p.requires_grad_(false);
        using var test = DatasetLoader.Load(info.Dataset, Split.Test, kv.GetValueOrDefault("data"));
        var x = test.Images(0, batch).requires_grad_(true);
        var eps = randn(x.shape, generator: new Generator(0, CPU));
        double before = PeakRssMiB();
        var p0 = new DifferentiablePurifier(net, new PurifierSettings(Steps: steps)) { Checkpointing = checkpointing };
        var sw = Stopwatch.StartNew();
        var y = p0.Purify(x, eps);
        Tensor grad;
        using (Adp.NativeRuntime.Backward()) grad = autograd.grad([y.square().sum()], [x])[0];
        sw.Stop();
        Console.WriteLine($"gradient through purifier ngf={info.Config.Ngf} T={steps} batch={batch} checkpointing={checkpointing}: " +
                          $"{sw.Elapsed.TotalSeconds:F2} s ({1000 * sw.Elapsed.TotalSeconds / batch:F1} ms/image), peak RSS {PeakRssMiB():F0} MiB " +
                          $"(before {before:F0} MiB), |grad| {grad.norm().item<float>():G3}");
    }
}
