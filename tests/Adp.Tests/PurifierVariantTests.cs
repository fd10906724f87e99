using Adp.Models;
using Adp.Purification;
using static TorchSharp.torch;

namespace Adp.Tests;

public class PurifierVariantTests
{
    /// <summary>h(x) = c − x (σ-free score of N(c, σ²) in the small-σ limit).</summary>
    private sealed class Pull(float c) : nn.Module<Tensor, Tensor>("pull")
    {
        public override Tensor forward(Tensor x) => x.SubtractedFrom(c);
    }

    [Fact]
    public void Tweedie_IsOneStepOfSizeSigma()
    {
        var x = HeldScalars.Full([2, 1, 4, 4], 0.5f);
        using var r = new TweediePurifier(new Pull(0.3f), 0.2).Purify(x, new Generator(4, CPU));
        var eps = randn(x.shape, generator: new Generator(4, CPU));
        var x0 = x.Plus(eps.Times(0.2)).ClampedToUnit();
        var expected = x0.Plus(x0.SubtractedFrom(0.3f).Times(0.2)).ClampedToUnit();
        Assert.True((r.Images - expected).abs().max().item<float>() < 1e-6);
    }

    [Fact]
    public void Reinjection_RunsOneStagePerSigma()
    {
        var x = HeldScalars.Full([3, 1, 4, 4], 0.5f);
        using var r = new ReinjectionPurifier(new Pull(0.3f), new PurifierSettings(Steps: 4), [0.2, 0.1, 0.0]).Purify(x, new Generator(1, CPU));
        Assert.Equal(12, r.StepSizes.shape[0]);  // 3 stages × 4 steps
        Assert.Equal(12, r.StepsTaken[0].item<long>());  // α = λ = 0.05 > τ each step (z = 1 − δ)
        Assert.True(r.Images.min().item<float>() >= 0 && r.Images.max().item<float>() <= 1);
    }

    [Fact]
    public void DetectionGate_UsesFullSigmaOnlyAboveThreshold()
    {
        // ‖h(x)‖₂ = ‖0.3 − x‖₂ over 16 pixels: 0.8 for x = 0.5 (below 1), 2.8 for x = 1 (above 1).
        var x = cat([HeldScalars.Full([1, 1, 4, 4], 0.5f), ones(1, 1, 4, 4)]);
        var p = new DetectionGatedPurifier(new Pull(0.3f), new PurifierSettings(Sigma: 0.5, Steps: 0), threshold: 1.0, reducedSigma: 0.0);
        using var r = p.Purify(x, new Generator(2, CPU));
        Assert.True(r.Images[0].equal(x[0]).all().item<bool>());          // σ = 0: untouched
        Assert.False(r.Images[1].equal(x[1]).all().item<bool>());         // σ = 0.5: noised
    }

    [Fact]
    public void Langevin_TakesKStepsAndStaysInRange()
    {
        var x = HeldScalars.Full([2, 1, 4, 4], 0.5f);
        using var r = new LangevinPurifier(new Pull(0.3f), sigma: 0.1, sigmaLevel: 0.1, steps: 50).Purify(x, new Generator(3, CPU));
        Assert.Equal(50, r.StepsTaken[0].item<long>());
        Assert.Equal(100, r.NetworkCallsPerImageSum);
        Assert.True(r.Images.min().item<float>() >= 0 && r.Images.max().item<float>() <= 1);
    }
}
