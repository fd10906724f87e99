using static TorchSharp.torch;

namespace Adp.Attacks;

/// <summary>An evasion attack: adversarial images inside the threat model's ε-ball around
/// <c>images</c> and inside [0,1]. Deterministic given <see cref="ThreatModel.Seed"/>, or given the random source
/// passed to <see cref="Perturb"/> (random starts and EOT noise then come from it).</summary>
public interface IAttack
{
    ThreatModel Threat { get; }
    string Describe();
    /// <summary>Adversarial versions of <paramref name="images"/> (N×C×H×W in [0,1]) for <paramref name="labels"/> (N);
    /// randomness from <paramref name="random"/> (N rows), or from a generator seeded with the threat model's seed.</summary>
    Tensor Perturb(IAttackModel model, Tensor images, Tensor labels, RandomSource? random = null);
}
