using Adp.Attacks;
using Adp.Data;
using Adp.Models;
using Adp.Purification;
using static TorchSharp.torch;

namespace Adp.Bench;

/// <summary>How often the research code's BPDA rule (sum of clipped one-step updates at the purified copies) and the
/// per-pixel sign vote step a pixel differently, at the clean start, with the same purification noise: the share of
/// pixels where sign(direction) differs (issue #10 item 7).</summary>
public static class BpdaRuleComparison
{
    public static void Run(Dictionary<string, string> kv)
    {
        string score = kv.GetValueOrDefault("score", "models/mnist-score.ckpt");
        string clfPath = kv.GetValueOrDefault("classifier", "models/mnist-smallcnn.ckpt");
        int n = int.Parse(kv.GetValueOrDefault("images", "64")), eot = int.Parse(kv.GetValueOrDefault("eot", "15"));
        double eps = double.Parse(kv.GetValueOrDefault("eps", "0.3"), System.Globalization.CultureInfo.InvariantCulture);
        var (net, info) = ScoreModelFile.Load(score);
        var (clf, _) = ClassifierFile.Load(clfPath);
        foreach (var p in net.parameters().Concat(clf.parameters())) p.requires_grad_(false);
        using var test = DatasetLoader.Load(info.Dataset, Split.Test, kv.GetValueOrDefault("data"));
        var x = test.Images(0, n);
        var y = test.Labels.narrow(0, 0, n);
        var threat = new ThreatModel(Norm.Linf, eps, eps / 4, 1, 1, false);
        Tensor Direction(BpdaAggregation rule)
        {
            var model = new BpdaEotModel(clf, new AdaptiveStepPurifier(net, new PurifierSettings()), eot, rule, net).ForThreat(threat);
            return model.LossAndDirection(x, y, AttackLoss.CrossEntropy, PerImageSource.For(0, Enumerable.Range(0, n).Select(i => (long)i), 1)).Direction;
        }
        var paper = Direction(BpdaAggregation.Paper).sign();
        var vote = Direction(BpdaAggregation.SignVote).sign();
        double differ = paper.ne(vote).to(ScalarType.Float64).mean().item<double>();
        double zeroPaper = paper.eq(0).to(ScalarType.Float64).mean().item<double>();
        Console.WriteLine($"BPDA rules at the clean start, {info.Dataset}, {n} test images, EOT {eot}, ε={eps}: sign of the step differs on " +
                          $"{100 * differ:F1}% of pixels (research rule: no step on {100 * zeroPaper:F1}%; same purification noise)");
    }
}
