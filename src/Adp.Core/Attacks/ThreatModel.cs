using static TorchSharp.torch;

namespace Adp.Attacks;

public enum Norm { Linf, L2 }

/// <summary>Losses an attack maximizes: cross-entropy, the CW margin max_{j≠y} z_j − z_y, and Croce & Hein's
/// difference-of-logits ratio DLR = −(z_y − max_{j≠y} z_j)/(z_π1 − z_π3).</summary>
public enum AttackLoss { CrossEntropy, Margin, Dlr }

/// <summary>The threat model and budget of an attack, as plain settings.</summary>
public sealed record ThreatModel(
    Norm Norm = Norm.Linf,
    double Epsilon = 0.3,
    double StepSize = 0.075,
    int Iterations = 40,
    int Restarts = 1,
    bool RandomStart = true,
    AttackLoss Loss = AttackLoss.CrossEntropy,
    long Seed = 0)
{
    public string Describe() =>
        $"{(Norm == Norm.Linf ? "ℓ∞" : "ℓ2")} ε={Epsilon:G4} step={StepSize:G4} iters={Iterations} restarts={Restarts} " +
        $"{(RandomStart ? "random start" : "no random start")} loss={Loss} seed={Seed}";

    public void Validate()
    {
        if (Epsilon < 0) throw new AdpException($"--epsilon: expected ≥ 0, got {Epsilon}");
        if (StepSize < 0) throw new AdpException($"--step: expected ≥ 0, got {StepSize}");
        if (Iterations < 0) throw new AdpException($"--iterations: expected ≥ 0, got {Iterations}");
        if (Restarts < 1) throw new AdpException($"--restarts: expected ≥ 1, got {Restarts}");
    }
}

public static class Losses
{
    /// <summary>max_{j≠y} z_j per image.</summary>
    public static Tensor OtherMax(Tensor logits, Tensor y)
    {
        using var mask = nn.functional.one_hot(y, logits.shape[1]).to(ScalarType.Bool);
        return logits.masked_fill(mask, float.NegativeInfinity).max(1).values;
    }

    /// <summary>Per-image loss (N) of logits (N×K) for labels y; larger means more adversarial.</summary>
    public static Tensor PerImage(Tensor logits, Tensor y, AttackLoss loss)
    {
        switch (loss)
        {
            case AttackLoss.CrossEntropy:
                return nn.functional.cross_entropy(logits, y, reduction: nn.Reduction.None);
            case AttackLoss.Margin:
            {
                var zy = logits.gather(1, y.view(-1, 1)).squeeze(1);
                var other = OtherMax(logits, y);
                return other - zy;
            }
            case AttackLoss.Dlr:
            {
                var sorted = logits.sort(1, descending: true).Values;
                var zy = logits.gather(1, y.view(-1, 1)).squeeze(1);
                var other = OtherMax(logits, y);
                return -(zy - other) / (sorted[.., 0] - sorted[.., 2] + 1e-12);
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(loss));
        }
    }
}

/// <summary>Projections of the threat model.</summary>
public static class Projection
{
    /// <summary>Projects x_adv onto {‖x_adv − x‖ ≤ ε} ∩ [0,1]^d.</summary>
    public static Tensor Project(Tensor xAdv, Tensor x, Norm norm, double eps)
    {
        using var scope = NewDisposeScope();
        var delta = xAdv - x;
        if (norm == Norm.Linf) delta = delta.clamp(-eps, eps);
        else
        {
            var n = delta.flatten(1).norm(1).view(-1, 1, 1, 1);
            delta = delta * (eps / (n + 1e-12)).clamp(max: 1.0);
        }
        return (x + delta).clamp(0, 1).MoveToOuterDisposeScope();
    }

    /// <summary>The steepest-ascent step of size α for the norm: α·sign(g) (ℓ∞) or α·g/‖g‖₂ (ℓ2).</summary>
    public static Tensor Step(Tensor g, Norm norm, double alpha)
    {
        if (norm == Norm.Linf) return alpha * g.sign();
        using var n = g.flatten(1).norm(1).view(-1, 1, 1, 1);
        return alpha * g / (n + 1e-12);
    }

    /// <summary>A uniformly random start inside the ε-ball (ℓ∞: uniform per pixel; ℓ2: uniform direction, radius ε·u^(1/d)).</summary>
    public static Tensor RandomStart(Tensor x, Norm norm, double eps, RandomSource g)
    {
        using var scope = NewDisposeScope();
        Tensor delta;
        if (norm == Norm.Linf) delta = (g.Rand(x.shape).to(x.dtype).to(x.device) * 2 - 1) * eps;
        else
        {
            long d = x[0].numel();
            var dir = g.Randn(x.shape).to(x.dtype).to(x.device);
            dir = dir / dir.flatten(1).norm(1).view(-1, 1, 1, 1);
            var r = g.Rand(new long[] { x.shape[0], 1, 1, 1 }).to(x.dtype).to(x.device).pow(1.0 / d) * eps;
            delta = dir * r;
        }
        return (x + delta).clamp(0, 1).MoveToOuterDisposeScope();
    }
}
