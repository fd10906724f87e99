using Adp.Data;
using Adp.Purification;
using Adp.Serving.Batching;
using Adp.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Adp.Serving.Inference;

/// <summary>
/// Runs one batch of work items through the library on the calling thread (the batch worker's): the classify
/// items together through <see cref="DefendedClassifier.Classify"/>, the purify items together through the purifier.
/// Every image draws its noise from its own stream keyed by its request's seed (<see cref="RequestSource"/>), so an
/// answer depends on the image and the seed only, not on the batch it landed in (up to float rounding).
/// </summary>
public static class BatchProcessor
{
    /// <summary>The random stream of a request: the image with index 0 under the request's seed, as
    /// <c>PerImageSource.For(seed, [0])</c> keys it.</summary>
    public static ulong RequestKey(long seed) => Seeds.Mix(seed, 0);

    /// <summary>Classify outcomes for <paramref name="items"/> (all <see cref="WorkKind.Classify"/>), in order.</summary>
    public static ClassifyOutcome[] Classify(DefenseModels m, IReadOnlyList<WorkItem> items)
    {
        if (items.Count == 0) return [];
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var x = Stack(m, items);
        var random = new PerImageSource(items.Select(i => RequestKey(i.Seed)).ToList());
        using var o = m.Defense.Classify(x, random);
        int n = items.Count, k = (int)o.RunLogits.shape[2], s = o.Runs;
        using var runs = s.ToScalar();  // held through the native calls: another thread's GC may finalize an implicit one
        var probabilities = (m.Rule switch
        {
            DecisionRule.MeanSoftmax => o.Scores(DecisionRule.MeanSoftmax),
            DecisionRule.MajorityVote => o.Scores(DecisionRule.MajorityVote).div(runs),
            // The rule's label is the argmax of the summed logits; the probabilities are the softmax of their mean.
            DecisionRule.LogitSum => o.RunLogits.sum(dim: 0).div(runs).softmax(1),
            _ => throw new ArgumentOutOfRangeException(nameof(m.Rule)),
        }).to(ScalarType.Float32).cpu().data<float>().ToArray();
        var labels = o.Predict(m.Rule).cpu().data<long>().ToArray();
        var votes = o.RunPredictions().cpu().data<long>().ToArray();   // S×N
        var steps = o.StepsTaken.cpu().data<long>().ToArray();         // S×N
        var outcomes = new ClassifyOutcome[n];
        for (int i = 0; i < n; i++)
            outcomes[i] = new ClassifyOutcome((int)labels[i], probabilities.AsSpan(i * k, k).ToArray(),
                Enumerable.Range(0, s).Select(r => (int)votes[r * n + i]).ToArray(),
                Enumerable.Range(0, s).Select(r => (int)steps[r * n + i]).ToArray());
        return outcomes;
    }

    /// <summary>Purify outcomes for <paramref name="items"/> (all <see cref="WorkKind.Purify"/>), in order. The noise is
    /// that of run 1 of <see cref="Classify"/> for the same seed, so /v1/purify shows what the first vote saw.</summary>
    public static PurifyOutcome[] Purify(DefenseModels m, IReadOnlyList<WorkItem> items)
    {
        if (items.Count == 0) return [];
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var x = Stack(m, items);
        var random = new PerImageSource(items.Select(i => RequestKey(i.Seed)).ToList()).Repeat(1);
        bool trajectory = items.Any(i => i.Trajectory);
        using var r = m.Purifier.Purify(x, random, keepTrajectory: trajectory);
        var images = r.Images.cpu();
        var steps = r.StepsTaken.cpu().data<long>().ToArray();
        var path = r.Trajectory?.cpu();
        var outcomes = new PurifyOutcome[items.Count];
        for (int i = 0; i < items.Count; i++)
        {
            byte[][]? frames = items[i].Trajectory && path is not null
                ? Enumerable.Range(0, (int)path.shape[0]).Select(t => PngImages.Encode(path[t, i])).ToArray()
                : null;
            outcomes[i] = new PurifyOutcome(PngImages.Encode(images[i]), frames, (int)steps[i]);
        }
        return outcomes;
    }

    private static Tensor Stack(DefenseModels m, IReadOnlyList<WorkItem> items)
    {
        int p = m.PixelCount;
        var data = new float[items.Count * p];
        for (int i = 0; i < items.Count; i++)
        {
            if (items[i].Pixels.Length != p)
                throw new ArgumentException($"work item {i} has {items[i].Pixels.Length} pixels, the model takes {p}");
            items[i].Pixels.CopyTo(data, i * p);
        }
        return tensor(data, [items.Count, m.Channels, m.ImageSize, m.ImageSize]).to(m.Device);
    }
}
