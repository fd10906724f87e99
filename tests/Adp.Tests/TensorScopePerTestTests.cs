using Adp.Models;
using static TorchSharp.torch;

namespace Adp.Tests;

// Its garbage-collection thread would expose other tests' temporaries: run alone.
[Collection(GlobalRngCollection.Name)]
public class TensorScopePerTestTests
{
    /// <summary>The hook itself, deterministically: a tensor made in a test body (a fact, and each row of a theory) belongs to a
    /// dispose scope though the test opened none.</summary>
    [Fact]
    public void ATensorMadeInATestBody_IsHeldByAScope() => MadeInAScope(2);

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void ATensorMadeInEachTheoryRow_IsHeldByAScope(int n) => MadeInAScope(n);

    /// <summary>TorchSharp counts, per thread, the tensors made inside and outside a scope.</summary>
    private static void MadeInAScope(int n)
    {
        var statistics = TorchSharp.DisposeScopeManager.Statistics;
        long inside = statistics.CreatedInScopeCount, outside = statistics.CreatedOutsideScopeCount;
        _ = zeros(n);
        Assert.Equal((inside + 1, outside), (statistics.CreatedInScopeCount, statistics.CreatedOutsideScopeCount));
    }

    /// <summary>Tensor temporaries outside any scope of the test itself, beside a thread that collects continuously: without
    /// <see cref="TensorScopePerTestAttribute"/> this crashed the test host within 20,000 iterations, or gave a wrong sum, in
    /// 5 of 5 runs (2 cores, 2026-12-02); with it, every sum has the bits of the undisturbed one (peak RSS +230 MB for 100,000).</summary>
    [Fact]
    public void TensorTemporaries_OutsideTheTestsOwnScopes_SurviveCollectionsFromAnotherThread()
    {
        var x = randn(new long[] { 8 }, generator: new Generator(1, CPU));
        int expected = BitConverter.SingleToInt32Bits(x.add(x.neg().exp(), RootedScalars.IntOne).sum().item<float>());
        using var collecting = HeldScalars.CollectContinuously();
        for (int i = 0; i < 50_000; i++)   // a count, not a time: the machine's load must not decide how much is tried
        {
            float sum = x.add(x.neg().exp(), RootedScalars.IntOne).sum().item<float>();
            Assert.True(BitConverter.SingleToInt32Bits(sum) == expected, $"iteration {i}: {sum}");
        }
    }
}
