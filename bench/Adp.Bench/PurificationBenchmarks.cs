using System.Diagnostics;
using Adp.Data;
using Adp.Models;
using Adp.Purification;
using static TorchSharp.torch;

namespace Adp.Bench;

public static class PurificationBenchmarks
{
    /// <summary>Times every forward call of the wrapped network.</summary>
    private sealed class TimedScore(nn.Module<Tensor, Tensor> inner) : nn.Module<Tensor, Tensor>("timed")
    {
        public readonly Stopwatch Clock = new();
        public long Images;
        public override Tensor forward(Tensor x)
        {
            Clock.Start();
            var y = inner.forward(x);
            Clock.Stop();
            Images += x.shape[0];
            return y;
        }
    }

    /// <summary>Defended classification images/s at S runs, T steps, a batch of inputs, on a score-model
    /// checkpoint and MNIST test images (embedded copy if no data directory): average steps taken and the share
    /// of time spent in the score network.</summary>
    public static void Purification(Dictionary<string, string> kv)
    {
        string score = kv.GetValueOrDefault("score", "models/mnist-score.ckpt");
        string? clfPath = kv.GetValueOrDefault("classifier");
        int runs = int.Parse(kv.GetValueOrDefault("runs", "10")), steps = int.Parse(kv.GetValueOrDefault("steps", "10"));
        int batch = int.Parse(kv.GetValueOrDefault("batch", "100")), batches = int.Parse(kv.GetValueOrDefault("batches", "2"));
        var (net, info) = ScoreModelFile.Load(score);
        var timed = new TimedScore(net);
        // chunk=N: images per network call (default: what the CLI gets, AdaptiveStepPurifier.ChunkFor the unwrapped network)
        int chunk = int.Parse(kv.GetValueOrDefault("chunk", AdaptiveStepPurifier.ChunkFor(net).ToString()));
        var purifier = new AdaptiveStepPurifier(timed, new PurifierSettings(Steps: steps)) { NetworkChunk = chunk };
        nn.Module<Tensor, Tensor> clf = clfPath is null ? new Flatten10() : ClassifierFile.Load(clfPath).Net;
        var defense = new DefendedClassifier(clf, purifier, runs);
        using var test = DatasetLoader.Load(info.Dataset, Split.Test, kv.GetValueOrDefault("data"));
        using var g = new Generator(0, CPU);
        using (var warm = defense.Classify(test.Images(0, 10), g)) { }
        timed.Clock.Reset(); timed.Images = 0;
        var sw = Stopwatch.StartNew();
        double stepsSum = 0;
        for (int b = 0; b < batches; b++)
        {
            using var o = defense.Classify(test.Images(b * batch, batch), g);
            stepsSum += o.StepsTaken.to(ScalarType.Float64).sum().item<double>();
        }
        sw.Stop();
        int inputs = batch * batches;
        Console.WriteLine($"purification {info.Path} ngf={info.Config.Ngf} S={runs} T={steps} batch={batch} chunk={chunk}: " +
                          $"{inputs / sw.Elapsed.TotalSeconds:F2} defended images/s, {inputs * runs / sw.Elapsed.TotalSeconds:F1} purifications/s, " +
                          $"mean steps {stepsSum / (inputs * runs):F2} of {steps}, network calls {timed.Images / (double)(inputs * runs):F1} per purification, " +
                          $"network time share {timed.Clock.Elapsed.TotalSeconds / sw.Elapsed.TotalSeconds:P1}, " +
                          $"network {timed.Images / timed.Clock.Elapsed.TotalSeconds:F0} images/s");
    }

    private sealed class Flatten10() : nn.Module<Tensor, Tensor>("flatten10")
    {
        public override Tensor forward(Tensor x) => x.flatten(1).narrow(1, 0, 10);
    }
}
