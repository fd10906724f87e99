using static TorchSharp.torch;

namespace Adp.Purification;

/// <summary>How the S purified copies of an input vote (METHOD.md §3).</summary>
public enum DecisionRule { MeanSoftmax, LogitSum, MajorityVote }

/// <summary>Per-run logits of a defended batch and the decisions of every rule.</summary>
public sealed class DefenseOutput : IDisposable
{
    /// <summary>S×N×K logits, one row of N per purification run.</summary>
    public required Tensor RunLogits { get; init; }
    /// <summary>Steps taken per run and image, S×N.</summary>
    public required Tensor StepsTaken { get; init; }

    public int Runs => (int)RunLogits.shape[0];

    /// <summary>S×N labels predicted by the individual runs.</summary>
    public Tensor RunPredictions() => RunLogits.argmax(2);

    /// <summary>N×K scores of a rule (probabilities for mean softmax, summed logits, vote counts).</summary>
    public Tensor Scores(DecisionRule rule) => rule switch
    {
        DecisionRule.MeanSoftmax => RunLogits.softmax(2).mean([0]),
        DecisionRule.LogitSum => RunLogits.sum(dim: 0),
        DecisionRule.MajorityVote => nn.functional.one_hot(RunPredictions(), RunLogits.shape[2]).sum(dim: 0).to(ScalarType.Float32),
        _ => throw new ArgumentOutOfRangeException(nameof(rule)),
    };

    /// <summary>N predicted labels; majority-vote ties go to the lowest label (argmax order).</summary>
    public Tensor Predict(DecisionRule rule)
    {
        using var s = Scores(rule);
        return s.argmax(1);
    }

    public void Dispose()
    {
        RunLogits.Dispose();
        StepsTaken.Dispose();
    }
}

/// <summary>
/// The randomized defense: S independent purifications of each input (fresh noise each), a classification
/// of each, and a decision by mean softmax (default), logit sum or majority vote. All S·N purifications of
/// a batch go through the score network together, in chunks of at most <see cref="MaxBatch"/> images.
/// </summary>
public sealed class DefendedClassifier(nn.Module<Tensor, Tensor> classifier, IPurifier purifier, int runs = 10)
{
    public int Runs { get; } = runs >= 1 ? runs : throw new AdpException($"--runs: expected at least 1, got {runs}");
    public IPurifier Purifier { get; } = purifier;
    public nn.Module<Tensor, Tensor> Classifier { get; } = classifier;
    /// <summary>Images per score-network batch; NCSNv2 activations cost megabytes per image, so this bounds memory.</summary>
    public int MaxBatch { get; init; } = 500;

    /// <summary>Classifies a batch (N×C×H×W in [0,1]); all randomness comes from <paramref name="random"/> (N rows;
    /// run s of image i uses copy s of row i). With a <see cref="PerImageSource"/> each image's result is independent of
    /// the rest of the batch and of <see cref="MaxBatch"/>. The classifier runs in evaluation mode; its flags are restored.</summary>
    public DefenseOutput Classify(Tensor x, RandomSource random)
    {
        using var eval = EvalMode.Enter(Classifier);  // a BatchNorm classifier in training mode would change (case 8)
        using var scope = NewDisposeScope();
        long n = x.shape[0];
        var logits = new List<Tensor>();
        var steps = new List<Tensor>();
        var repeated = x.repeat(Runs, 1, 1, 1);  // run-major: rows [s·N, (s+1)·N) are run s
        var copies = random.Repeat(Runs);
        using (no_grad())
        {
            for (long start = 0; start < Runs * n; start += MaxBatch)
            {
                long m = Math.Min(MaxBatch, Runs * n - start);
                using var r = Purifier.Purify(repeated.narrow(0, start, m), copies.Narrow(start, m));
                logits.Add(Classifier.forward(r.Images));
                steps.Add(r.StepsTaken.clone());
            }
        }
        var output = new DefenseOutput
        {
            RunLogits = cat(logits).view(Runs, n, -1).MoveToOuterDisposeScope(),
            StepsTaken = cat(steps).view(Runs, n).MoveToOuterDisposeScope(),
        };
        return output;
    }
}
