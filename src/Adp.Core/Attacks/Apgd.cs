using static TorchSharp.torch;

namespace Adp.Attacks;

/// <summary>
/// Auto-PGD (Croce & Hein 2020): momentum 0.75, step size starting at 2ε and halved at checkpoints where the
/// loss stopped rising (fewer than 75% of the steps since the last checkpoint improved it, or no improvement
/// and no reduction at the last checkpoint), restarting from the best point. Returns the best point found.
/// Use with CE or DLR loss. <see cref="ThreatModel.StepSize"/> is ignored.
/// </summary>
public sealed class Apgd(ThreatModel threat) : IAttack
{
    public ThreatModel Threat { get; } = threat;
    public string Describe() => $"APGD {Threat.Describe()} (step size adaptive from 2ε)";

    /// <inheritdoc/>
    /// <exception cref="AdpException">Invalid threat model, images or labels, or a loss the classifier cannot take.</exception>
    public Tensor Perturb(IAttackModel model, Tensor images, Tensor labels, RandomSource? random = null) =>
        Restarts.Run(Threat, model, images, labels, random, (m, y, g) => RunOnce(m, images, y, g));

    private (Tensor Adv, Tensor? Loss) RunOnce(IAttackModel model, Tensor x, Tensor y, RandomSource g)
    {
        var t = Threat;
        int n = t.Iterations;
        int k = Math.Max((int)(0.22 * n), 1), kMin = Math.Max((int)(0.06 * n), 1), decrement = Math.Max((int)(0.03 * n), 1);
        long batch = x.shape[0];
        var adv = t.RandomStart && t.Epsilon > 0 ? Projection.RandomStart(x, t.Norm, t.Epsilon, g) : x.clone();
        var (loss, grad) = model.LossAndDirection(adv, y, t.Loss, g);
        var bestAdv = adv.clone();
        var bestLoss = loss.clone();
        var bestGrad = grad.clone();
        var step = full(new long[] { batch, 1, 1, 1 }, 2 * t.Epsilon, dtype: x.dtype, device: x.device);
        var lossHistory = new List<Tensor> { loss.clone() };
        var advOld = adv.clone();
        var lossAtLastCheck = bestLoss.clone();
        var reducedAtLastCheck = zeros(new long[] { batch }, ScalarType.Bool, device: x.device);
        int counter = 0;
        for (int i = 0; i < n; i++)
        {
            using var scope = NewDisposeScope();
            var momentum = adv - advOld;
            advOld = adv.clone().MoveToOuterDisposeScope();
            double a = i > 0 ? 0.75 : 1.0;
            var stepped = t.Norm == Norm.Linf ? step * grad.sign() : step * grad / (grad.flatten(1).norm(1).view(-1, 1, 1, 1) + 1e-12);
            var z = Projection.Project(adv + stepped, x, t.Norm, t.Epsilon);
            adv = Projection.Project(adv + (z - adv) * a + momentum * (1 - a), x, t.Norm, t.Epsilon).MoveToOuterDisposeScope();
            var (l, gr) = model.LossAndDirection(adv, y, t.Loss, g);
            loss = l.MoveToOuterDisposeScope();
            grad = gr.MoveToOuterDisposeScope();
            lossHistory.Add(loss.clone().MoveToOuterDisposeScope());
            var improved = loss.gt(bestLoss);
            bestAdv = where(improved.view(-1, 1, 1, 1), adv, bestAdv).MoveToOuterDisposeScope();
            bestGrad = where(improved.view(-1, 1, 1, 1), grad, bestGrad).MoveToOuterDisposeScope();
            bestLoss = where(improved, loss, bestLoss).MoveToOuterDisposeScope();
            if (++counter < k) continue;
            // Checkpoint: count the steps since the last one that increased the loss.
            var increases = zeros(new long[] { batch }, device: x.device);
            int h = lossHistory.Count - 1;
            for (int j = 0; j < k && h - j - 1 >= 0; j++) increases += lossHistory[h - j].gt(lossHistory[h - j - 1]).to(increases.dtype);
            var oscillating = increases.le(k * 0.75);
            var noImprovement = reducedAtLastCheck.logical_not().logical_and(lossAtLastCheck.ge(bestLoss));
            var reduce = oscillating.logical_or(noImprovement);
            reducedAtLastCheck = reduce.MoveToOuterDisposeScope();
            lossAtLastCheck = bestLoss.clone().MoveToOuterDisposeScope();
            var r4 = reduce.view(-1, 1, 1, 1);
            step = where(r4, step / 2, step).MoveToOuterDisposeScope();
            adv = where(r4, bestAdv, adv).MoveToOuterDisposeScope();
            grad = where(r4, bestGrad, grad).MoveToOuterDisposeScope();
            counter = 0;
            k = Math.Max(k - decrement, kMin);
        }
        return (bestAdv, bestLoss);
    }
}
