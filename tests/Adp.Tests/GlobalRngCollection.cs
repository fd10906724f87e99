namespace Adp.Tests;

/// <summary>Tests whose results depend on libtorch's global generator (weight initialization after torch.manual_seed, as
/// the trainers do): they run alone, after the parallel tests, so no other test draws from or reseeds that generator
/// between their seed and their draws (a resumed-equals-uninterrupted test failed once in CI that way).</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class GlobalRngCollection
{
    public const string Name = "global torch generator";
}
