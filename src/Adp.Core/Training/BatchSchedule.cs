using static TorchSharp.torch;

namespace Adp.Training;

/// <summary>
/// The mini-batches of a training run as a pure function of (seed, iteration): each epoch is a seeded
/// permutation of the training set (the last partial batch dropped), and each iteration gets its own
/// random generator. Resuming at iteration k therefore reproduces exactly what an uninterrupted run does.
/// </summary>
public sealed class BatchSchedule(int datasetSize, int batchSize, long seed)
{
    private int _epoch = -1;
    private int[] _perm = [];

    public int BatchesPerEpoch { get; } = Math.Max(1, datasetSize / batchSize);
    public int BatchSize { get; } = Math.Min(batchSize, datasetSize);

    public long[] Indices(long iteration)
    {
        int epoch = (int)(iteration / BatchesPerEpoch);
        int pos = (int)(iteration % BatchesPerEpoch);
        if (epoch != _epoch)
        {
            _perm = Enumerable.Range(0, datasetSize).ToArray();
            new Random(Seeds.MixInt(seed, epoch, 1)).Shuffle(_perm);
            _epoch = epoch;
        }
        return _perm.AsSpan(pos * BatchSize, BatchSize).ToArray().Select(i => (long)i).ToArray();
    }

    /// <summary>The random generator of one iteration (noise levels, noise, augmentation); always on the CPU so
    /// that a run draws the same numbers on any device.</summary>
    public Generator GeneratorFor(long iteration) =>
        new(Seeds.MixTorch(seed, iteration, 2), CPU);
}
