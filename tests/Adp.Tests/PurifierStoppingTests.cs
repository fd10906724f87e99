using Adp.Data;
using Adp.Models;
using Adp.Purification;
using TorchSharp;
using static TorchSharp.torch;

namespace Adp.Tests;

/// <summary>Stopping in both purifiers: degenerate score networks (case 5) and the research code's loop exit.</summary>
public partial class PurifierTests
{
    private static readonly TorchSharp.Scalar Half = 0.5;

    private static Tensor Degenerate(string kind, Tensor x) => kind switch
    {
        "zero" => zeros_like(x),
        "nan" => full_like(x, HeldScalars.NaN),
        "inf" => full_like(x, HeldScalars.PositiveInfinity),
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    [Theory]
    [InlineData("zero", false)]
    [InlineData("zero", true)]
    [InlineData("nan", false)]
    [InlineData("nan", true)]
    [InlineData("inf", false)]
    public void DegenerateScore_StopsEveryImage_NoNaNAnywhere(string kind, bool faithful)
    {
        // Case 5: a zero score gives z = 0/0 and α = NaN, and the purified image came out NaN.
        var net = new Lambda(x => Degenerate(kind, x));
        var s = new PurifierSettings(Sigma: 0.25, Steps: 5, Faithful: faithful);
        var x = rand(new long[] { 3, 1, 6, 6 }, generator: new Generator(1, CPU));
        var eps = randn(new long[] { 3, 1, 6, 6 }, generator: new Generator(2, CPU));
        var x0 = x.Plus(eps.Times(0.25)).ClampedToUnit();
        var start = faithful ? AdaptiveStepPurifier.RangeMap(x0) : x0;

        using var r = new AdaptiveStepPurifier(net, s).Purify(x, eps);
        Assert.True(r.Images.equal(start).all().item<bool>(), "the purified image is not the noisy start");
        Assert.True(r.StepSizes.isfinite().all().item<bool>() && r.StepSizes.abs().sum().item<float>() == 0);
        Assert.Equal(0, r.StepsTaken.sum().item<long>());

        foreach (bool checkpointing in new[] { true, false })
        {
            var xr = x.clone().requires_grad_(true);
            var d = new DifferentiablePurifier(net, s) { Checkpointing = checkpointing }.Purify(xr, eps);
            Assert.True(d.detach().equal(start).all().item<bool>());
            var grad = autograd.grad([d.sum()], [xr])[0];
            Assert.True(grad.isfinite().all().item<bool>(), $"gradient through the purifier is not finite (checkpointing {checkpointing})");
        }

        var clf = new Lambda(v => v.flatten(1).narrow(1, 0, 4).Times(3));
        using var o = new DefendedClassifier(clf, new AdaptiveStepPurifier(net, s), runs: 3).Classify(x, new Generator(4, CPU));
        Assert.True(o.Scores(DecisionRule.MeanSoftmax).isfinite().all().item<bool>());
    }

    /// <summary>Every purifier variant, with keepTrajectory (what `adp purify` asks for).</summary>
    private static IPurifier[] EveryVariant(nn.Module<Tensor, Tensor> net) =>
    [
        new DetectionGatedPurifier(net, new PurifierSettings(Sigma: 0.25, Steps: 3), threshold: 10, reducedSigma: 0.1),
        new ReinjectionPurifier(net, new PurifierSettings(Steps: 2), [0.25, 0.1]),
        new TweediePurifier(net, 0.25),
        new LangevinPurifier(net, sigma: 0.25, sigmaLevel: 0.05, steps: 4),
    ];

    [Theory]
    [InlineData("zero")]
    [InlineData("nan")]
    [InlineData("inf")]
    public void DegenerateScore_EveryVariant_NoNaNAnywhere(string kind)
    {
        // Case 5's kind in the variants: Tweedie and Langevin passed a NaN or infinite score into the image.
        var net = new Lambda(x => Degenerate(kind, x));
        var x = rand(new long[] { 3, 1, 6, 6 }, generator: new Generator(1, CPU));
        var clf = new Lambda(v => v.flatten(1).narrow(1, 0, 4).Times(3));
        foreach (var p in EveryVariant(net))
        {
            using var r = p.Purify(x, new Generator(3, CPU), keepTrajectory: true);
            Assert.True(r.Images.isfinite().all().item<bool>(), $"{p.Describe()}: purified image not finite");
            Assert.True(r.Trajectory!.isfinite().all().item<bool>() && r.StepSizes.isfinite().all().item<bool>(), p.Describe());
            if (kind != "zero")
            {
                // Not finite: no step is taken, the image is the noisy start (re-injection adds its later noise, no step).
                Assert.Equal(0, r.StepsTaken.sum().item<long>());
                if (p is not ReinjectionPurifier)
                    Assert.True(r.Images.equal(r.Trajectory![0]).all().item<bool>(), $"{p.Describe()}: stepped along a non-finite score");
            }
            using var o = new DefendedClassifier(clf, p, runs: 2).Classify(x, new Generator(4, CPU));
            Assert.True(o.Scores(DecisionRule.MeanSoftmax).isfinite().all().item<bool>(), p.Describe());
        }
    }

    [Fact]
    public void DegenerateScore_TweedieAndLangevin_StopOnlyThatImage()
    {
        // NaN score for the bright image only: the dark one is denoised and takes every step.
        var net = new Lambda(x =>
            where(x.flatten(1).mean([1]).gt(Half).view(-1, 1, 1, 1), full_like(x, HeldScalars.NaN), x.SubtractedFrom(0.2f)));
        var x = cat([HeldScalars.Full([1, 1, 4, 4], 0.9f), HeldScalars.Full([1, 1, 4, 4], 0.1f)]);
        using var t = new TweediePurifier(net, 0).Purify(x, new Generator(0, CPU));
        Assert.Equal(new long[] { 0, 1 }, t.StepsTaken.data<long>().ToArray());
        Assert.True(t.Images[0].equal(x[0]).all().item<bool>());
        Assert.True((t.Images[1] - x[1]).abs().max().item<float>() < 1e-6);  // σ = 0: x₀ + 0·h = x₀
        using var l = new LangevinPurifier(net, sigma: 0, sigmaLevel: 0.05, steps: 3).Purify(x, new Generator(0, CPU));
        Assert.Equal(new long[] { 0, 3 }, l.StepsTaken.data<long>().ToArray());
        Assert.True(l.Images[0].equal(x[0]).all().item<bool>());
        Assert.False(l.Images[1].equal(x[1]).all().item<bool>());  // moved by its steps
    }

    [Fact]
    public void Langevin_ScoreTurningNonFiniteMidway_StopsAtThatStep_AndOtherImagesAreUnchanged()
    {
        // The bright image's score turns NaN from the third network call on; the dark one is always finite.
        int calls = 0;
        var net = new Lambda(x =>
        {
            calls++;
            var bright = x.flatten(1).mean([1]).gt(Half).view(-1, 1, 1, 1);
            return calls > 2 ? where(bright, full_like(x, HeldScalars.NaN), x.SubtractedFrom(0.2f)) : x.SubtractedFrom(0.2f);
        });
        var x = cat([HeldScalars.Full([1, 1, 4, 4], 0.9f), HeldScalars.Full([1, 1, 4, 4], 0.1f)]);
        var p = new LangevinPurifier(net, sigma: 0, sigmaLevel: 0.05, steps: 4);
        using var both = p.Purify(x, PerImageSource.For(0, [0, 1], 9), keepTrajectory: true);
        Assert.Equal(new long[] { 2, 4 }, both.StepsTaken.data<long>().ToArray());
        Assert.True(both.Images[0].equal(both.Trajectory![2][0]).all().item<bool>(), "not the iterate of its last finite step");
        Assert.True(both.Images.isfinite().all().item<bool>());
        Assert.Equal(new float[] { (float)(0.01 * 0.05 * 0.05), (float)(0.01 * 0.05 * 0.05) }, both.StepSizes.data<float>().ToArray());
        // The dark image's result does not depend on its neighbour stopping (per-image random streams).
        calls = 0;
        using var alone = p.Purify(x.narrow(0, 1, 1), PerImageSource.For(0, [1], 9));
        Assert.True(both.Images[1].equal(alone.Images[0]).all().item<bool>());
    }

    [Fact]
    public void FinalStepSize_IsTheLastNonZeroStep_AlsoAcrossReinjectionStages()
    {
        // Re-injection with T = 3: stage 1 stopped after one step, stage 2 after one: rows 0.1, 0, 0, 0.05, 0, 0.
        var stepSizes = tensor(new float[] { 0.1f, 0, 0, 0.05f, 0, 0 }).view(6, 1);
        Assert.Equal(0.05f, Adp.Cli.Commands.PurifyCommands.FinalStepSize(stepSizes));
        Assert.Equal(0.002f, Adp.Cli.Commands.PurifyCommands.FinalStepSize(HeldScalars.Full([1, 1], 0.002f)));  // Langevin: one row
        Assert.Equal(0f, Adp.Cli.Commands.PurifyCommands.FinalStepSize(zeros(3, 1)));
    }

    [Fact]
    public void DegenerateScore_StopsOnlyThatImage()
    {
        // NaN score for bright images only: the dark image purifies exactly as on its own.
        var net = new Lambda(x =>
            where(x.flatten(1).mean([1]).gt(Half).view(-1, 1, 1, 1), full_like(x, HeldScalars.NaN), x.SubtractedFrom(0.2f)));
        var s = new PurifierSettings(Sigma: 0, Steps: 4);
        var x = cat([HeldScalars.Full([1, 1, 4, 4], 0.9f), HeldScalars.Full([1, 1, 4, 4], 0.1f)]);
        using var both = new AdaptiveStepPurifier(net, s).Purify(x, zeros_like(x));
        using var alone = new AdaptiveStepPurifier(net, s).Purify(x.narrow(0, 1, 1), zeros(1, 1, 4, 4));
        Assert.True(both.Images[0].equal(x[0]).all().item<bool>());
        Assert.True(both.Images[1].equal(alone.Images[0]).all().item<bool>());
        Assert.Equal(new long[] { 0, 4 }, both.StepsTaken.data<long>().ToArray());
        foreach (bool checkpointing in new[] { true, false })
        {
            var d = new DifferentiablePurifier(net, s) { Checkpointing = checkpointing }.Purify(x, zeros_like(x));
            Assert.True((d - both.Images).abs().max().item<float>() < 1e-6, $"checkpointing {checkpointing}");
        }
    }

    /// <summary>purification/adp.py (jmyoon1/adp at 497e2d4), lines 25–54, transcribed: every image is updated at
    /// every step (stopped ones with a zero step, so the inverse range map still hits them) until the step at which
    /// every image has stopped, where the loop breaks before updating.</summary>
    private static Tensor ResearchLoop(nn.Module<Tensor, Tensor> net, Tensor x0, PurifierSettings s)
    {
        var cur = AdaptiveStepPurifier.RangeMap(x0);
        var cont = ones(new long[] { x0.shape[0] }, ScalarType.Bool);
        using TorchSharp.Scalar tau = s.Tau;
        for (int i = 0; i < s.Steps; i++)
        {
            var alpha = AdaptiveStepPurifier.StepSize(net, cur, s, out var grad);
            cont = cont.logical_and(alpha.gt(tau));
            if (!cont.any().item<bool>()) break;
            alpha = alpha * cont;
            cur = AdaptiveStepPurifier.InverseMap(cur.Plus(grad * alpha.view(-1, 1, 1, 1))).ClampedToUnit();
        }
        return cur;
    }

    [Theory]
    [InlineData(new float[] { 0.9f, 0.95f })]        // every image stops at the first step: the loop breaks at once
    [InlineData(new float[] { 0.9f, 0.3f })]         // the bright one stops at once, the dark one when it passes 0.5
    [InlineData(new float[] { 0.3f, 0.45f, 0.2f })]  // they stop at different steps, the last one ends the loop
    public void Faithful_FollowsTheResearchLoop_WhichEndsWhenEveryImageHasStopped(float[] levels)
    {
        // h = k·(0.8 − x) with k = 1 below mean 0.5 (α = 0.05) and k = 100 above (α = 5e-4 ≤ τ: stop).
        var h = new GaussianScore(0.8f);
        var s = new PurifierSettings(Sigma: 0, Steps: 25, Faithful: true);
        var x = cat(levels.Select(v => HeldScalars.Full([1, 1, 4, 4], v)).ToArray());
        var expected = ResearchLoop(h, x, s);
        using var r = new AdaptiveStepPurifier(h, s).Purify(x, zeros_like(x));
        Assert.True((r.Images - expected).abs().max().item<float>() < 1e-6, "faithful purification differs from adp.py's loop");
        foreach (bool checkpointing in new[] { true, false })
        {
            var d = new DifferentiablePurifier(h, s) { Checkpointing = checkpointing }.Purify(x, zeros_like(x));
            Assert.True((d - expected).abs().max().item<float>() < 1e-6,
                $"faithful differentiable purification differs from adp.py's loop (checkpointing {checkpointing})");
        }
        // With nothing running the old code kept applying the inverse map, stretching the images away from this.
        if (levels.All(v => v > 0.5f)) Assert.True(r.Images.equal(AdaptiveStepPurifier.RangeMap(x)).all().item<bool>());
    }

    [CasesFact]
    public void Case5_ZeroOutputNcsnv2_ClassifiesWithFiniteConfidence()
    {
        // adp import --safetensors cases/ncsnv2-ngf2-zero-output.safetensors --dataset mnist; adp classify … gave NaN.
        var config = ScoreModelConfig.ForDataset("mnist") with { Ngf = 2, SigmaMax = 1, SigmaMin = 0.01, NumLevels = 10 };
        var net = ScoreModelFile.ImportPyTorch(TestEnvironment.CaseFile("ncsnv2-ngf2-zero-output.safetensors"), config);
        var (clf, _) = ClassifierFile.Load(Path.Combine(AttackTests.RepoRoot(), "models", "mnist-smallcnn.ckpt"));
        var x = PngImages.Read(TestEnvironment.CaseFile("png-gray8-reference.png"), 1);
        foreach (var faithful in new[] { false, true })
        {
            var s = new PurifierSettings(Faithful: faithful);
            using var o = new DefendedClassifier(clf, new AdaptiveStepPurifier(net, s), runs: 3).Classify(x, new Generator(0, CPU));
            var p = o.Scores(DecisionRule.MeanSoftmax);
            Assert.True(p.isfinite().all().item<bool>(), $"confidence not finite (faithful {faithful})");
            using var r = new AdaptiveStepPurifier(net, s).Purify(x, new Generator(0, CPU));
            Assert.True(r.Images.isfinite().all().item<bool>() && r.Images.max().item<float>() > 0, "purified image NaN or black");
        }
    }
}
