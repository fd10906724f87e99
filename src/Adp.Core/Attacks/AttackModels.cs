using Adp.Purification;
using static TorchSharp.torch;

namespace Adp.Attacks;

/// <summary>
/// What an attack sees of the model under attack: a per-image loss and an ascent direction with respect to
/// the input. For a plain classifier it is the loss gradient; for a randomized defense it is an EOT
/// estimate (BPDA or full gradient) over fresh purification noise. Implementations run the networks they call in
/// evaluation mode (<see cref="EvalMode"/>) and leave every module's training flag and buffers as they found them.
/// </summary>
public interface IAttackModel
{
    string Describe();

    /// <summary>Per-image loss (N) and ascent direction (N×C×H×W) at x (N×C×H×W in [0,1]) for labels y (N, any integer
    /// dtype); EOT noise comes from <paramref name="random"/> (N rows).</summary>
    (Tensor Loss, Tensor Direction) LossAndDirection(Tensor x, Tensor y, AttackLoss loss, RandomSource random);

    /// <summary>Checks, before an attack spends any work, that the loss is defined for these inputs (DLR needs ≥ 3
    /// classes) and that y holds N valid class indices. Attacks call it once at the start; the default checks nothing.</summary>
    /// <exception cref="AdpException">The loss or the labels do not fit the classifier.</exception>
    void CheckInputs(Tensor x, Tensor y, AttackLoss loss) { }
}

/// <summary>The bare classifier: exact gradients.</summary>
public sealed class ClassifierModel(nn.Module<Tensor, Tensor> classifier) : IAttackModel
{
    public string Describe() => "bare classifier";

    /// <summary>The loss and its gradient at x, with the classifier in evaluation mode (its flags restored after).</summary>
    public (Tensor Loss, Tensor Direction) LossAndDirection(Tensor x, Tensor y, AttackLoss loss, RandomSource random)
    {
        using var eval = EvalMode.Enter(classifier);
        return Gradient(classifier, x, y, loss);
    }

    public void CheckInputs(Tensor x, Tensor y, AttackLoss loss) => Check(classifier, x, y, loss);

    /// <summary>Per-image loss and its input gradient; the caller sets the classifier's mode.</summary>
    internal static (Tensor Loss, Tensor Grad) Gradient(nn.Module<Tensor, Tensor> classifier, Tensor x, Tensor y, AttackLoss loss)
    {
        using var enable = enable_grad();
        using var scope = NewDisposeScope();
        var xr = x.detach().requires_grad_(true);
        var l = Losses.PerImage(classifier.forward(xr), y, loss);
        var grad = autograd.grad([l.sum()], [xr])[0];
        return (l.detach().MoveToOuterDisposeScope(), grad.MoveToOuterDisposeScope());
    }

    /// <summary>One forward pass of the first image (evaluation mode, no gradient) gives the number of classes K;
    /// then <see cref="Losses.CheckClasses"/> and <see cref="Losses.Labels"/> (N labels in 0…K−1).</summary>
    internal static void Check(nn.Module<Tensor, Tensor> classifier, Tensor x, Tensor y, AttackLoss loss)
    {
        if (x.dim() < 1 || x.shape[0] == 0) return;
        using var eval = EvalMode.Enter(classifier);
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var logits = classifier.forward(x.narrow(0, 0, 1));
        if (logits.dim() != 2) throw new AdpException($"classifier: expected N×K logits, got shape [{string.Join(", ", logits.shape)}]");
        Losses.CheckClasses(loss, logits.shape[1]);
        Losses.Labels(y, x.shape[0], logits.shape[1]);
    }
}

/// <summary>How BPDA+EOT combines the n_EOT gradients.</summary>
public enum BpdaAggregation
{
    /// <summary>The paper's: a per-pixel vote of gradient signs, Σ_j sign(∇_j).</summary>
    SignVote,
    /// <summary>Standard EOT: the mean gradient (stronger).</summary>
    Mean,
    /// <summary>Score-aware: ½·sign(Σ_j sign(∇_j)) + ½·sign(h(x)), which also pulls the point toward high density.</summary>
    ScoreAware,
}

/// <summary>
/// BPDA+EOT (Athalye et al. 2018 as used by the ADP paper): for each of n_EOT samples, purify the current point
/// with fresh noise (no gradient), take the loss gradient of the classifier at the purified image, and treat
/// purification as the identity in the backward pass. The classifier and <paramref name="score"/> (if given) run in
/// evaluation mode.
/// </summary>
public sealed class BpdaEotModel(nn.Module<Tensor, Tensor> classifier, IPurifier purifier, int eotSamples,
    BpdaAggregation aggregation = BpdaAggregation.SignVote, nn.Module<Tensor, Tensor>? score = null) : IAttackModel
{
    public string Describe() => $"BPDA+EOT ({aggregation}, n_EOT={eotSamples}) through {purifier.Describe()}";

    /// <summary>Images per purification batch: the n_EOT copies of a batch are purified together in chunks of this size.</summary>
    public int MaxBatch { get; init; } = 500;

    public (Tensor Loss, Tensor Direction) LossAndDirection(Tensor x, Tensor y, AttackLoss loss, RandomSource random)
    {
        if (eotSamples < 1) throw new AdpException($"--eot: expected at least 1, got {eotSamples}");
        using var eval = EvalMode.Enter(classifier, score);
        using var scope = NewDisposeScope();
        long n = x.shape[0];
        // All n_EOT purifications of the batch go through the score network together (sample-major rows).
        var copies = x.detach().repeat(eotSamples, 1, 1, 1);
        var ys = y.repeat(eotSamples);
        var noise = random.Repeat(eotSamples);
        var losses = new List<Tensor>();
        var grads = new List<Tensor>();
        for (long start = 0; start < copies.shape[0]; start += MaxBatch)
        {
            long m = Math.Min(MaxBatch, copies.shape[0] - start);
            using var r = purifier.Purify(copies.narrow(0, start, m), noise.Narrow(start, m));
            var (l, grad) = ClassifierModel.Gradient(classifier, r.Images, ys.narrow(0, start, m), loss);
            losses.Add(l);
            grads.Add(grad);
        }
        var perSample = cat(grads).view([eotSamples, n, .. x.shape.Skip(1)]);
        var direction = aggregation == BpdaAggregation.Mean ? perSample.mean([0]) : perSample.sign().sum(dim: 0);
        if (aggregation == BpdaAggregation.ScoreAware)
        {
            if (score is null) throw new AdpException("score-aware BPDA needs the score model");
            using var _ = no_grad();
            direction = 0.5 * direction.sign() + 0.5 * score.forward(x.detach()).sign();
        }
        var meanLoss = cat(losses).view(eotSamples, n).mean([0]);
        return (meanLoss.MoveToOuterDisposeScope(), direction.MoveToOuterDisposeScope());
    }

    public void CheckInputs(Tensor x, Tensor y, AttackLoss loss) => ClassifierModel.Check(classifier, x, y, loss);
}

/// <summary>
/// The full-gradient adaptive attack: differentiates through the purifier itself (network calls and updates;
/// step sizes detached) and averages the gradient over n_EOT fresh noise draws. The classifier and the purifier's
/// score network run in evaluation mode (also during the backward pass, which recomputes the network).
/// </summary>
public sealed class FullGradientEotModel(nn.Module<Tensor, Tensor> classifier, DifferentiablePurifier purifier, int eotSamples) : IAttackModel
{
    public string Describe() => $"full gradient through the purifier, EOT n={eotSamples}, {purifier.Settings.Describe()}";

    public (Tensor Loss, Tensor Direction) LossAndDirection(Tensor x, Tensor y, AttackLoss loss, RandomSource random)
    {
        if (eotSamples < 1) throw new AdpException($"--eot: expected at least 1, got {eotSamples}");
        using var eval = EvalMode.Enter(classifier, purifier.Score);
        using var scope = NewDisposeScope();
        Tensor? gradSum = null, lossSum = null;
        for (int j = 0; j < eotSamples; j++)
        {
            using var inner = NewDisposeScope();
            using var enable = enable_grad();
            var xr = x.detach().requires_grad_(true);
            var eps = random.Randn(x.shape).to(x.dtype).to(x.device);
            var l = Losses.PerImage(classifier.forward(purifier.Purify(xr, eps)), y, loss);
            var grad = autograd.grad([l.sum()], [xr])[0];
            gradSum = gradSum is null ? grad.MoveToOuterDisposeScope() : (gradSum + grad).MoveToOuterDisposeScope();
            lossSum = lossSum is null ? l.detach().MoveToOuterDisposeScope() : (lossSum + l.detach()).MoveToOuterDisposeScope();
        }
        return ((lossSum! / eotSamples).MoveToOuterDisposeScope(), (gradSum! / eotSamples).MoveToOuterDisposeScope());
    }

    public void CheckInputs(Tensor x, Tensor y, AttackLoss loss) => ClassifierModel.Check(classifier, x, y, loss);
}
