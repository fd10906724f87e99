using Adp.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Adp.Attacks;

/// <summary>
/// Projected gradient descent (Madry et al. 2018), ℓ∞ or ℓ2, optional random start and restarts. Returns the
/// final iterate (as the ADP paper's BPDA+EOT did) or, with <see cref="ReturnBest"/>, the iterate of highest
/// loss; across restarts the result of highest final loss is kept per image.
/// </summary>
public sealed class Pgd(ThreatModel threat) : IAttack
{
    public ThreatModel Threat { get; } = threat;
    public bool ReturnBest { get; init; }
    /// <summary>Called with (k, iterate after k steps) for k = 0 … Iterations of every restart; used to measure
    /// robust accuracy against the attack budget from one run (PGD with a fixed step makes the k-step iterate
    /// exactly what a k-iteration attack returns).</summary>
    public Action<int, Tensor>? OnIterate { get; init; }
    public string Describe() => $"PGD {Threat.Describe()}{(ReturnBest ? " best-iterate" : " final-iterate")}";

    /// <inheritdoc/>
    /// <exception cref="AdpException">Invalid threat model, images or labels, or a loss the classifier cannot take.</exception>
    public Tensor Perturb(IAttackModel model, Tensor images, Tensor labels, RandomSource? random = null) =>
        Restarts.Run(Threat, model, images, labels, random, (m, y, g) => RunOnce(m, images, y, g));

    private (Tensor Adv, Tensor? Loss) RunOnce(IAttackModel model, Tensor x, Tensor y, RandomSource g)
    {
        var t = Threat;
        var adv = t.RandomStart && t.Epsilon > 0 ? Projection.RandomStart(x, t.Norm, t.Epsilon, g) : x.clone();
        Tensor? bestAdv = null, bestLoss = null;
        OnIterate?.Invoke(0, adv);
        for (int k = 0; k < t.Iterations; k++)
        {
            using var step = NewDisposeScope();
            var (loss, direction) = model.LossAndDirection(adv, y, t.Loss, g);
            if (ReturnBest) Track(adv, loss, ref bestAdv, ref bestLoss, step);
            var next = adv.Plus(Projection.Step(direction, t.Norm, t.StepSize, model.Kind));  // held α: see RootedScalars
            adv = Projection.Project(next, x, t.Norm, t.Epsilon).MoveToOuterDisposeScope();
            OnIterate?.Invoke(k + 1, adv);
        }
        // The loss at the final iterate costs one more EOT estimate: only the best iterate and a comparison of
        // restarts need it.
        if (!ReturnBest && t.Restarts == 1) return (adv, null);
        var (finalLoss, _) = model.LossAndDirection(adv, y, t.Loss, g);
        if (!ReturnBest) return (adv, finalLoss);
        Track(adv, finalLoss, ref bestAdv, ref bestLoss, null);
        return (bestAdv!, bestLoss!);
    }

    private static void Track(Tensor adv, Tensor loss, ref Tensor? bestAdv, ref Tensor? bestLoss, DisposeScope? scope)
    {
        if (bestAdv is null) { bestAdv = adv.clone(); bestLoss = loss.clone(); }
        else
        {
            var better = loss.gt(bestLoss!);
            bestAdv = where(better.view(-1, 1, 1, 1), adv, bestAdv);
            bestLoss = where(better, loss, bestLoss!);
        }
        if (scope is not null) scope.MoveToOuter(bestAdv, bestLoss!);
    }
}
