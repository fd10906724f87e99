using static TorchSharp.torch;

namespace Adp.Attacks;

/// <summary>Fast gradient sign method (Goodfellow et al. 2015): one step of size ε (ℓ∞) or ε·g/‖g‖ (ℓ2).</summary>
public sealed class Fgsm(ThreatModel threat) : IAttack
{
    public ThreatModel Threat { get; } = threat;
    public string Describe() => $"FGSM {Threat.Describe()}";

    public Tensor Perturb(IAttackModel model, Tensor images, Tensor labels, RandomSource? random = null)
    {
        Threat.Validate();
        using var g = new Generator((ulong)Threat.Seed, CPU);
        using var scope = NewDisposeScope();
        var (_, direction) = model.LossAndDirection(images, labels, Threat.Loss, random ?? g);
        var adv = Projection.Project(images + Projection.Step(direction, Threat.Norm, Threat.Epsilon), images, Threat.Norm, Threat.Epsilon);
        return adv.MoveToOuterDisposeScope();
    }
}
