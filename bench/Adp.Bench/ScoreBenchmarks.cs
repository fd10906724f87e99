using System.Diagnostics;
using Adp.Data;
using Adp.Models;
using Adp.Training;
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
            DsmLoss.Sample(net, x, sigmas, g).backward();
            opt.step();
        }
        double ips = iters * batch / sw.Elapsed.TotalSeconds;
        Console.WriteLine($"dsm-train ngf={ngf} batch={batch} 28x28x1: {ips:F1} images/s ({sw.Elapsed.TotalMilliseconds / iters:F0} ms/iteration)");
    }

    /// <summary>Score-network forward images/s under no_grad.</summary>
    public static void Forward(Dictionary<string, string> kv)
    {
        int ngf = Int(kv, "ngf", 16), batch = Int(kv, "batch", 100), iters = Int(kv, "iters", 10);
        using var net = new Ncsnv2(new ScoreModelConfig(1, 28, ngf, 1.0, 0.01, 10));
        net.eval();
        using var _ = no_grad();
        using var x = rand(batch, 1, 28, 28);
        for (int i = 0; i < 2; i++) net.forward(x).Dispose();
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < iters; i++) net.forward(x).Dispose();
        Console.WriteLine($"score-forward ngf={ngf} batch={batch} 28x28x1: {iters * batch / sw.Elapsed.TotalSeconds:F1} images/s");
    }
}
