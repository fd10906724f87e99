using Adp.IO;
using Adp.Models;
using Adp.Purification;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Adp.Tests;

/// <summary>
/// Faithful mode against the paper's code (ncsnv2_mnist_ngf16_a). α = λδ/(1−z) with 1−z ≈ 6e-4 amplifies the
/// float32 rounding of the network (our h matches PyTorch's to 1.4e-6 mean, 7.9e-6 max) about 1600-fold:
/// perturbing h by 5e-6 moves α by 3–8e-4 relative (measured). So the test checks (1) each step's update
/// rule exactly, given the reference's iterate and step size; (2) each α computed at the reference iterate
/// within that conditioning; (3) the free-running trajectory end to end.
/// </summary>
public class PurifierParityTests(ITestOutputHelper output)
{
    [ReferenceFact]
    public void FaithfulMode_EveryUpdateMatches_GivenReferenceIterateAndStepSize()
    {
        using var f = SafeTensors.Load(TestEnvironment.ReferenceFile("ncsnv2_mnist_ngf16_a.safetensors"));
        using var net = Ncsnv2ParityTests.LoadReference(f, 1, 28);
        using var noGrad = no_grad();
        var it = f.Get("adp_iterates");
        var steps = f.Get("adp_step_sizes");
        // x₀: noise injection then the range map.
        using var r0 = new AdaptiveStepPurifier(net, new PurifierSettings(Faithful: true, Steps: 0)).Purify(f.Get("x"), f.Get("adp_noise"), true);
        Ncsnv2ParityTests.AssertClose(it[0], r0.Trajectory![0], 1e-6, 0, "x0");
        for (int t = 0; t < steps.shape[0]; t++)
        {
            var g = net.forward(it[t]);
            var next = AdaptiveStepPurifier.Advance(it[t], steps[t], g, faithful: true);
            Ncsnv2ParityTests.AssertClose(it[t + 1], next, 1e-4, 0, $"iterate {t + 1}");
        }
    }

    [ReferenceFact]
    public void FaithfulMode_StepSizesMatch_WithinConditioning()
    {
        // The stated 1e-4 relative, plus the reference's own float32 uncertainty: its z = ⟨g,g′⟩/⟨g,g⟩ carries
        // rounding noise up to ~2e-6, and α = λδ/(1−z) turns that into 2e-6/(1−z) relative. Measured with
        // bench/pytorch/alpha_conditioning.py: the paper network in PyTorch 1.13 on this machine misses the reference
        // α by 1.2e-3 (float32) and even the float64 computation by 1.2e-3, all at steps where 1−z ≈ 1e-3, and by
        // ≤ 1.3e-4 where 1−z ≥ 4e-3. So a flat 1e-4 is unattainable for any implementation, PyTorch included.
        using var f = SafeTensors.Load(TestEnvironment.ReferenceFile("ncsnv2_mnist_ngf16_a.safetensors"));
        using var net = Ncsnv2ParityTests.LoadReference(f, 1, 28);
        using var noGrad = no_grad();
        var it = f.Get("adp_iterates");
        var steps = f.Get("adp_step_sizes").to(ScalarType.Float64);
        var s = new PurifierSettings(Faithful: true);
        double worst = 0, worstRatio = 0;
        for (int t = 0; t < steps.shape[0]; t++)
        {
            var alpha = AdaptiveStepPurifier.StepSize(net, it[t], s, out _).to(ScalarType.Float64);
            var rel = (alpha - steps[t]).abs() / steps[t];
            var oneMinusZ = steps[t].reciprocal().Times(s.Lambda * s.Delta);   // from the reference's α (unclamped range)
            var tolerance = oneMinusZ.reciprocal().Times(2e-6).Plus(1e-4);
            worst = Math.Max(worst, rel.max().item<double>());
            worstRatio = Math.Max(worstRatio, (rel / tolerance).max().item<double>());
        }
        output.WriteLine($"worst relative step-size difference {worst:G3}; worst fraction of its tolerance {worstRatio:G3}");
        Assert.True(worstRatio <= 1, $"a step size differs by more than 1e-4 + 2e-6/(1−z) relative (worst {worstRatio:G3} of the tolerance)");
    }

    [ReferenceFact]
    public void FaithfulMode_FreeRunningTrajectoryMatches()
    {
        using var f = SafeTensors.Load(TestEnvironment.ReferenceFile("ncsnv2_mnist_ngf16_a.safetensors"));
        using var net = Ncsnv2ParityTests.LoadReference(f, 1, 28);
        using var r = new AdaptiveStepPurifier(net, new PurifierSettings(Faithful: true)).Purify(f.Get("x"), f.Get("adp_noise"), keepTrajectory: true);
        var it = f.Get("adp_iterates");
        var steps = f.Get("adp_step_sizes");
        for (int t = 0; t < it.shape[0]; t++)
            output.WriteLine($"iterate {t}: max |diff| {(it[t] - r.Trajectory![t]).abs().max().item<float>():G3}");
        for (int t = 0; t < it.shape[0]; t++)
            Ncsnv2ParityTests.AssertClose(it[t], r.Trajectory![t], 5e-4, 0, $"iterate {t}");
        // Free-running, the conditioning compounds: a 2e-4 iterate difference moves later α by up to ~0.5%.
        Ncsnv2ParityTests.AssertClose(steps, r.StepSizes, 0, 1e-2, "step sizes");
        Assert.Equal(r.Images.shape, it[^1].shape);
    }
}
