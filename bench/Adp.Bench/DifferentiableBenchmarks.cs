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
        var grad = autograd.grad([y.square().sum()], [x])[0];
        sw.Stop();
        Console.WriteLine($"gradient through purifier ngf={info.Config.Ngf} T={steps} batch={batch} checkpointing={checkpointing}: " +
                          $"{sw.Elapsed.TotalSeconds:F2} s ({1000 * sw.Elapsed.TotalSeconds / batch:F1} ms/image), peak RSS {PeakRssMiB():F0} MiB " +
                          $"(before {before:F0} MiB), |grad| {grad.norm().item<float>():G3}");
    }
}
