using System.Diagnostics;
using Adp.Data;
using Adp.Purification;
using static TorchSharp.torch;

namespace Adp.Evaluation;

public sealed record RuleAccuracy(DecisionRule Rule, long Correct, int Images)
{
    public double Accuracy => (double)Correct / Images;
    public (double Low, double High) Interval => Statistics.Wilson(Correct, Images);
}

public sealed record DefendedResult(string Data, int Images, int Runs, long Seed, string Purifier,
    IReadOnlyList<RuleAccuracy> Rules, double SingleRunAccuracy, double MeanSteps, double Seconds);

/// <summary>Natural accuracy of the randomized defense on clean images, for every decision rule.</summary>
public static class DefendedEvaluation
{
    public static DefendedResult Run(DefendedClassifier defense, ImageDataset data, int batchSize, long seed, Device device,
        Action<int>? progress = null)
    {
        using var g = new Generator((ulong)seed, CPU);
        var rules = Enum.GetValues<DecisionRule>();
        var correct = new long[rules.Length];
        long singleCorrect = 0;
        double steps = 0;
        var clock = Stopwatch.StartNew();
        for (int start = 0; start < data.Count; start += batchSize)
        {
            using var scope = NewDisposeScope();
            int n = Math.Min(batchSize, data.Count - start);
            var x = data.Images(start, n, device);
            var y = data.Labels.narrow(0, start, n).to(device);
            using var o = defense.Classify(x, g);
            for (int r = 0; r < rules.Length; r++) correct[r] += o.Predict(rules[r]).eq(y).sum().item<long>();
            singleCorrect += o.RunPredictions().eq(y.unsqueeze(0)).sum().item<long>();
            steps += o.StepsTaken.to(ScalarType.Float64).sum().item<double>();
            progress?.Invoke(start + n);
        }
        int total = data.Count;
        return new DefendedResult(data.Description, total, defense.Runs, seed, defense.Purifier.Describe(),
            rules.Select((r, i) => new RuleAccuracy(r, correct[i], total)).ToList(),
            (double)singleCorrect / (total * defense.Runs), steps / (total * defense.Runs), clock.Elapsed.TotalSeconds);
    }
}
