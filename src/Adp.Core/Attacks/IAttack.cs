using static TorchSharp.torch;

namespace Adp.Attacks;

/// <summary>An evasion attack: adversarial images inside the threat model's ε-ball around
/// <c>images</c> and inside [0,1]. Deterministic given <see cref="ThreatModel.Seed"/>.</summary>
public interface IAttack
{
    ThreatModel Threat { get; }
    string Describe();
    Tensor Perturb(IAttackModel model, Tensor images, Tensor labels);
}
