using Adp.Models;
using static TorchSharp.torch;

namespace Adp.Attacks;

/// <summary>Fast gradient sign method (Goodfellow et al. 2015): one step of size ε (ℓ∞) or ε·g/‖g‖ (ℓ2).</summary>
public sealed class Fgsm(ThreatModel threat) : IAttack
{
    public ThreatModel Threat { get; } = threat;
    public string Describe() => $"FGSM {Threat.Describe()}";

    /// <inheritdoc/>
    /// <exception cref="AdpException">Invalid threat model, images or labels, or a loss the classifier cannot take.</exception>
    public Tensor Perturb(IAttackModel model, Tensor images, Tensor labels, RandomSource? random = null)
    {
        var (bound, y) = Restarts.Prepare(Threat, model, images, labels);
        using var g = new Generator((ulong)Threat.Seed, CPU);
        using var scope = NewDisposeScope();
        var (_, direction) = bound.LossAndDirection(images, y, Threat.Loss, random ?? g);
        var step = Projection.Step(direction, Threat.Norm, Threat.Epsilon, bound.Kind);
        return Projection.Project(images.Plus(step), images, Threat.Norm, Threat.Epsilon).MoveToOuterDisposeScope();
    }
}
