using Adp.Models;
using Adp.Purification;
using static TorchSharp.torch;

namespace Adp.Tests;

public partial class PurifierTests
{
    /// <summary>h(x) = k·(c − x), the σ-free score of a Gaussian around c, with k = 1 for dark images (mean < 0.5)
    /// and k = 100 for bright ones. Then h(x+δh) = (1−kδ)·h, z = 1 − kδ and α = λδ/(kδ) = λ/k exactly.</summary>
    private sealed class GaussianScore(float c) : nn.Module<Tensor, Tensor>("gaussian")
    {
        public int Calls { get; private set; }
        public override Tensor forward(Tensor x)
        {
            Calls += (int)x.shape[0];
            var k = where(x.flatten(1).mean([1]).lt(Half), 1f, 100f).view(-1, 1, 1, 1);
            return k * x.SubtractedFrom(c);
        }
    }

    [Fact]
    public void HandWorkedCase_StepSizesUpdatesAndStopping()
    {
        var h = new GaussianScore(0.2f);
        var purifier = new AdaptiveStepPurifier(h, new PurifierSettings(Sigma: 0, Steps: 10));
        var x = cat([zeros(1, 1, 4, 4), HeldScalars.Full([1, 1, 4, 4], 0.9f)]);
        using var r = purifier.Purify(x, zeros_like(x), keepTrajectory: true);

        // Dark image: α = λ = 0.05 every step, x_{t+1} = x_t + 0.05·(0.2 − x_t) ⇒ x_T = 0.2·(1 − 0.95^T).
        double expected = 0.2 * (1 - Math.Pow(0.95, 10));
        Assert.Equal(expected, r.Images[0].mean().item<float>(), 1e-5);
        Assert.Equal(10, r.StepsTaken[0].item<long>());
        for (int t = 0; t < 10; t++)
        {
            Assert.Equal(0.05, r.StepSizes[t, 0].item<float>(), 5e-6);  // float32 probe: 1−z = δ amplifies rounding
            Assert.Equal(0.2 * (1 - Math.Pow(0.95, t + 1)), r.Trajectory![t + 1, 0].mean().item<float>(), 1e-5);
        }
        // Bright image: α = λ/100 = 5e-4 ≤ τ = 1e-3, so it stops at once and never moves or costs more calls.
        Assert.Equal(0, r.StepsTaken[1].item<long>());
        Assert.True(r.Images[1].equal(x[1]).all().item<bool>());
        Assert.Equal(0f, r.StepSizes[.., 1].abs().sum().item<float>());
        Assert.Equal(2 * 10 + 2, h.Calls);
        Assert.Equal(22, r.NetworkCallsPerImageSum);
    }

    [Fact]
    public void StepSize_IsClampedAndAlphaMinWhenZAtLeastOne()
    {
        var s = new PurifierSettings();
        // h ≡ constant: z = 1 exactly ⇒ α_min; h = 1000·(c − x): α = λ/1000 = 5e-5 stays above α_min.
        var constant = new Lambda(x => ones_like(x));
        Assert.Equal(s.AlphaMin, AdaptiveStepPurifier.StepSize(constant, zeros(2, 1, 3, 3), s, out _)[0].item<float>(), 8);
        var steep = new Lambda(x => x.SubtractedFrom(0.5f).Times(1000));
        Assert.Equal(5e-5, AdaptiveStepPurifier.StepSize(steep, zeros(1, 1, 3, 3), s, out _)[0].item<float>(), 7);
        // h growing along itself (z > 1): the raw value is negative ⇒ α_min.
        var growing = new Lambda(x => x.Plus(0.1f));
        Assert.Equal(s.AlphaMin, AdaptiveStepPurifier.StepSize(growing, HeldScalars.Full([1, 1, 3, 3], 0.3f), s, out _)[0].item<float>(), 8);
        // h shrinking slowly along itself: raw above α_max ⇒ α_max.
        var flat = new Lambda(x => x.SubtractedFrom(0.5f).Times(0.01f));
        Assert.Equal(s.AlphaMax, AdaptiveStepPurifier.StepSize(flat, zeros(1, 1, 3, 3), s, out _)[0].item<float>(), 6);
    }

    private sealed class Lambda(Func<Tensor, Tensor> f) : nn.Module<Tensor, Tensor>("lambda")
    {
        public override Tensor forward(Tensor x) => f(x);
    }

    [Fact]
    public void SameSeed_GivesBitIdenticalOutputs()
    {
        var h = new GaussianScore(0.3f);
        var purifier = new AdaptiveStepPurifier(h, new PurifierSettings());
        var x = rand(new long[] { 4, 1, 8, 8 }, generator: new Generator(3, CPU)).Times(0.4f);
        using var a = purifier.Purify(x, new Generator(11, CPU));
        using var b = purifier.Purify(x, new Generator(11, CPU));
        using var c = purifier.Purify(x, new Generator(12, CPU));
        Assert.True(a.Images.bytes.SequenceEqual(b.Images.bytes));
        Assert.False(a.Images.bytes.SequenceEqual(c.Images.bytes));
        Assert.True(a.Images.min().item<float>() >= 0 && a.Images.max().item<float>() <= 1);
    }

    [Fact]
    public void DecisionRules_OnKnownLogits()
    {
        // 3 runs, 1 image, 3 classes. Votes: class 0, 0, 2 ⇒ majority 0. Logit sums: [4, 0, 6] ⇒ logit-sum 2.
        // Mean softmax: run 3 is very confident in class 2 ⇒ 2; computed independently below.
        var logits = tensor(new float[] { 2, 0, 1.9f, 2, 0, 1.9f, 0, 0, 2.2f }).view(3, 1, 3);
        using var o = new DefenseOutput { RunLogits = logits, StepsTaken = zeros(3, 1, dtype: ScalarType.Int64) };
        Assert.Equal(0, o.Predict(DecisionRule.MajorityVote).item<long>());
        Assert.Equal(2, o.Predict(DecisionRule.LogitSum).item<long>());
        double[] p = new double[3];
        foreach (var row in new[] { new[] { 2, 0, 1.9 }, new[] { 2, 0, 1.9 }, new[] { 0, 0, 2.2 } })
        {
            double z = row.Sum(Math.Exp);
            for (int k = 0; k < 3; k++) p[k] += Math.Exp(row[k]) / z / 3;
        }
        Assert.Equal(Array.IndexOf(p, p.Max()), o.Predict(DecisionRule.MeanSoftmax).item<long>());
        Assert.Equal(p[2], o.Scores(DecisionRule.MeanSoftmax)[0, 2].item<float>(), 5);
        Assert.Equal(new long[] { 0, 0, 2 }, o.RunPredictions().flatten().data<long>().ToArray());
    }

    [Fact]
    public void DefendedClassifier_RunsAreIndependentAndSeeded()
    {
        var h = new GaussianScore(0.3f);
        var clf = new Lambda(x => x.flatten(1).narrow(1, 0, 3).Times(10));
        var defense = new DefendedClassifier(clf, new AdaptiveStepPurifier(h, new PurifierSettings()), runs: 4) { MaxBatch = 3 };
        var x = rand(new long[] { 2, 1, 4, 4 }, generator: new Generator(1, CPU));
        using var a = defense.Classify(x, new Generator(5, CPU));
        using var b = defense.Classify(x, new Generator(5, CPU));
        Assert.Equal(new long[] { 4, 2, 3 }, a.RunLogits.shape);
        Assert.True(a.RunLogits.bytes.SequenceEqual(b.RunLogits.bytes));
        Assert.False(a.RunLogits[0].equal(a.RunLogits[1]).all().item<bool>());  // fresh noise per run
    }
}
