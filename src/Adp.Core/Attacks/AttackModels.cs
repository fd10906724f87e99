using Adp.Purification;
using static TorchSharp.torch;

namespace Adp.Attacks;

/// <summary>
/// What an attack sees of the model under attack: a per-image loss and an ascent direction with respect to
/// the input. For a plain classifier it is the loss gradient; for a randomized defense it is an EOT
/// estimate (BPDA or full gradient) over fresh purification noise.
/// </summary>
public interface IAttackModel
{
    string Describe();
    /// <summary>Per-image loss (N) and ascent direction (N×C×H×W) at x; EOT noise comes from <paramref name="random"/> (N rows).</summary>
    (Tensor Loss, Tensor Direction) LossAndDirection(Tensor x, Tensor y, AttackLoss loss, RandomSource random);
}

/// <summary>The bare classifier: exact gradients.</summary>
public sealed class ClassifierModel(nn.Module<Tensor, Tensor> classifier) : IAttackModel
{
    public string Describe() => "bare classifier";

    public (Tensor Loss, Tensor Direction) LossAndDirection(Tensor x, Tensor y, AttackLoss loss, RandomSource random)
    {
        using var enable = enable_grad();
        using var scope = NewDisposeScope();
        var xr = x.detach().requires_grad_(true);
        var l = Losses.PerImage(classifier.forward(xr), y, loss);
        var grad = autograd.grad([l.sum()], [xr])[0];
        return (l.detach().MoveToOuterDisposeScope(), grad.MoveToOuterDisposeScope());
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
/// purification as the identity in the backward pass.
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
            var (l, grad) = new ClassifierModel(classifier).LossAndDirection(r.Images, ys.narrow(0, start, m), loss, noise);
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
}

/// <summary>
/// The full-gradient adaptive attack: differentiates through the purifier itself (network calls and updates;
/// step sizes detached) and averages the gradient over n_EOT fresh noise draws.
/// </summary>
public sealed class FullGradientEotModel(nn.Module<Tensor, Tensor> classifier, DifferentiablePurifier purifier, int eotSamples) : IAttackModel
{
    public string Describe() => $"full gradient through the purifier, EOT n={eotSamples}, {purifier.Settings.Describe()}";

    public (Tensor Loss, Tensor Direction) LossAndDirection(Tensor x, Tensor y, AttackLoss loss, RandomSource random)
    {
        if (eotSamples < 1) throw new AdpException($"--eot: expected at least 1, got {eotSamples}");
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
}
