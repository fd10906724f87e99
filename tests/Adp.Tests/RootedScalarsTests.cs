using Adp.Models;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Adp.Tests;

// Its garbage-collection thread would expose other tests' implicit scalars: run alone.
[Collection(GlobalRngCollection.Name)]
public class RootedScalarsTests
{
    private static bool SameBits(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.contiguous().bytes.SequenceEqual(b.contiguous().bytes);

    [Fact]
    public void TheRootedOps_GiveTheBitsOfTheImplicitScalarOnes()
    {
        var g = new Generator(3, CPU);
        using var x = randn([4, 3, 7, 7], generator: g) * 5;  // negative and positive, |x| up to ~20
        Assert.True(SameBits(F.elu(x, 1.0, false), RootedScalars.Elu(x)));
        // TorchSharp 0.107's F.elu with inplace = true leaves its input as it was; the network relied on that.
        using var a = x.clone();
        Assert.True(SameBits(F.elu(a, 1.0, true), RootedScalars.Elu(x)) && SameBits(a, x));
        Assert.True(SameBits(2 * x - 1, x.mul(RootedScalars.Two).sub(RootedScalars.One)));
        Assert.True(SameBits(x.abs() + 1e-5, x.abs().Plus(RootedScalars.NormEpsilon)));
        Assert.True(SameBits(x.clamp(0, 1), x.clamp(RootedScalars.Zero, RootedScalars.One)));
        using var y = randn([4, 3, 7, 7], generator: g);
        using var z = randn([4, 3, 1, 1], generator: g);
        Assert.True(SameBits(addcmul(z, x, y, 1.0), addcmul(z, x, y, RootedScalars.One)));
        using var delta = 1e-3.ToScalar();
        Assert.True(SameBits(x + 1e-3 * y, x.Plus(y.mul(delta))));  // the step-size probe
        Assert.True(SameBits(x + y, x.Plus(y)));
        Assert.True(SameBits(x.square(), x.pow(RootedScalars.IntTwo)));
    }

    /// <summary>The same loop with F.elu(x, 1.0) (implicit scalars) failed with libtorch's "toFloat" error at calls 9,999,
    /// 15,474 and 17,464 of three runs (2 cores, 2026-11-30).</summary>
    [Fact]
    public void Elu_SurvivesGarbageCollectionsFromAnotherThread()
    {
        using var x = randn([64, 64]);
        using var expected = F.elu(x, 1.0, false);
        using var stop = new CancellationTokenSource();
        var collector = new Thread(() => { while (!stop.IsCancellationRequested) { GC.Collect(); GC.WaitForPendingFinalizers(); } });
        collector.Start();
        try
        {
            for (int i = 0; i < 50000; i++)
            {
                using var y = RootedScalars.Elu(x);
                if (i % 5000 == 0) Assert.True(SameBits(expected, y));
            }
        }
        finally { stop.Cancel(); collector.Join(); }
    }

    /// <summary>The score network's forward under the same pressure. Before every scalar of it was rooted (square's pow(2)
    /// was the last), this failed within 126 forwards; rooted, 6,148 forwards in 120 s passed (2 cores, 2026-11-30).</summary>
    [Fact]
    public void ScoreNetworkForward_SurvivesGarbageCollectionsFromAnotherThread()
    {
        var net = new Ncsnv2(new ScoreModelConfig(1, 28, 4, 1, 0.01, 3));
        net.eval();
        using var x = rand([1, 1, 28, 28], generator: new Generator(5, CPU));
        using var _ = no_grad();
        using var expected = net.forward(x);
        using var stop = new CancellationTokenSource();
        var collector = new Thread(() => { while (!stop.IsCancellationRequested) { GC.Collect(); GC.WaitForPendingFinalizers(); } });
        collector.Start();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        int forwards = 0;
        try
        {
            for (; forwards < 1000 && clock.Elapsed.TotalSeconds < 30; forwards++)
            {
                using var y = net.forward(x);
                if (forwards % 250 == 0) Assert.True(SameBits(expected, y));
            }
        }
        finally { stop.Cancel(); collector.Join(); }
        Assert.True(forwards >= 300, $"only {forwards} forwards in 30 s: too few to tell");
    }
}
