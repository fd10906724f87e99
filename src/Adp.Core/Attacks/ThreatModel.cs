using Adp.Models;
using TorchSharp;
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
    /// <summary>The DLR loss divides by z_π1 − z_π3, so it needs at least this many classes.</summary>
    public const int DlrMinClasses = 3;

    /// <summary>max_{j≠y} z_j per image.</summary>
    public static Tensor OtherMax(Tensor logits, Tensor y)
    {
        using var mask = nn.functional.one_hot(Labels(y), logits.shape[1]).to(ScalarType.Bool);
        return logits.masked_fill(mask, RootedScalars.NegativeInfinity).max(1).values;  // held: see RootedScalars
    }

    /// <summary>Throws unless <paramref name="loss"/> is defined for a classifier with <paramref name="classes"/>
    /// outputs: DLR needs at least <see cref="DlrMinClasses"/> (case 6), the others at least 2.</summary>
    /// <exception cref="AdpException">Too few classes for the loss.</exception>
    public static void CheckClasses(AttackLoss loss, long classes)
    {
        if (loss == AttackLoss.Dlr && classes < DlrMinClasses)
            throw new AdpException($"loss dlr: needs a classifier with at least {DlrMinClasses} classes " +
                                   $"(it divides by z_π1 − z_π3); this one has {classes}; use ce or margin");
        if (classes < 2) throw new AdpException($"loss {loss}: needs a classifier with at least 2 classes; this one has {classes}");
    }

    /// <summary>
    /// Labels as int64, the dtype torch's losses and indexing need: labels of any integer dtype (uint8, int8, int16,
    /// int32, int64) are converted (case 7); an int64 tensor is returned as it is. With <paramref name="count"/> the
    /// labels must be a vector of that length, with <paramref name="classes"/> every label must lie in 0…classes−1.
    /// </summary>
    /// <exception cref="AdpException">Non-integer labels (float, bool, complex), a wrong shape or an out-of-range label.</exception>
    public static Tensor Labels(Tensor y, long? count = null, long? classes = null)
    {
        if (y.dtype is not (ScalarType.Int64 or ScalarType.Int32 or ScalarType.Int16 or ScalarType.Int8 or ScalarType.Byte))
            throw new AdpException($"labels: expected an integer tensor (class indices), got dtype {y.dtype}");
        if (count is long n && (y.dim() != 1 || y.shape[0] != n))
            throw new AdpException($"labels: expected a vector of {n} class indices, got shape [{string.Join(", ", y.shape)}]");
        var labels = y.dtype == ScalarType.Int64 ? y : y.to(ScalarType.Int64);
        if (classes is long k && labels.numel() > 0)
        {
            long min = labels.min().item<long>(), max = labels.max().item<long>();
            if (min < 0 || max >= k)
                throw new AdpException($"labels: expected class indices in 0…{k - 1}, got values from {min} to {max}");
        }
        return labels;
    }

    /// <summary>Per-image loss (N) of logits (N×K) for labels y (N, any integer dtype); larger means more adversarial.</summary>
    /// <exception cref="AdpException">Logits not N×K, labels not N integers in 0…K−1, or DLR with K &lt; 3.</exception>
    public static Tensor PerImage(Tensor logits, Tensor y, AttackLoss loss)
    {
        if (logits.dim() != 2) throw new AdpException($"loss: expected N×K logits, got shape [{string.Join(", ", logits.shape)}]");
        CheckClasses(loss, logits.shape[1]);
        using var scope = NewDisposeScope();
        var labels = Labels(y, logits.shape[0], logits.shape[1]);
        switch (loss)
        {
            case AttackLoss.CrossEntropy:
                return nn.functional.cross_entropy(logits, labels, reduction: nn.Reduction.None).MoveToOuterDisposeScope();
            case AttackLoss.Margin:
            {
                var zy = logits.gather(1, labels.view(-1, 1)).squeeze(1);
                var other = OtherMax(logits, labels);
                return (other - zy).MoveToOuterDisposeScope();
            }
            case AttackLoss.Dlr:
            {
                var sorted = logits.sort(1, descending: true).Values;
                var zy = logits.gather(1, labels.view(-1, 1)).squeeze(1);
                var other = OtherMax(logits, labels);
                return (-(zy - other) / (sorted[.., 0] - sorted[.., 2]).Plus(1e-12)).MoveToOuterDisposeScope();
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(loss));
        }
    }
}

/// <summary>Projections of the threat model. Scalars are held through each native call (see <see cref="RootedScalars"/>):
/// attacks call these every iteration.</summary>
public static class Projection
{
    /// <summary>Projects x_adv onto {‖x_adv − x‖ ≤ ε} ∩ [0,1]^d.</summary>
    public static Tensor Project(Tensor xAdv, Tensor x, Norm norm, double eps)
    {
        using var scope = NewDisposeScope();
        var delta = xAdv - x;
        if (norm == Norm.Linf) delta = delta.Clamped(-eps, eps);
        else
        {
            var n = delta.flatten(1).norm(1).view(-1, 1, 1, 1);
            delta = delta * n.Plus(1e-12).reciprocal().Times(eps).clamp(max: RootedScalars.One);  // eps / (n + 1e-12), as the operator computes it
        }
        return x.Plus(delta).ClampedToUnit().MoveToOuterDisposeScope();
    }

    /// <summary>The step of size α along direction g (N×C×H×W): for an ascent direction the steepest-ascent step,
    /// α·sign(g) (ℓ∞) or α·g/‖g‖₂ (ℓ2); for a <see cref="DirectionKind.Step"/> direction α·g (ℓ∞ only).</summary>
    /// <exception cref="AdpException">A <see cref="DirectionKind.Step"/> direction under ℓ2.</exception>
    public static Tensor Step(Tensor g, Norm norm, double alpha, DirectionKind kind = DirectionKind.Ascent)
    {
        if (kind == DirectionKind.Step)
            return norm == Norm.Linf ? g.Times(alpha) : throw new AdpException("a per-pixel step direction needs an ℓ∞ threat model");
        if (norm == Norm.Linf) return g.sign().Times(alpha);
        using var n = g.flatten(1).norm(1).view(-1, 1, 1, 1);
        using var scope = NewDisposeScope();
        return (g.Times(alpha) / n.Plus(1e-12)).MoveToOuterDisposeScope();
    }

    /// <summary>A uniformly random start inside the ε-ball (ℓ∞: uniform per pixel; ℓ2: uniform direction, radius ε·u^(1/d)).</summary>
    public static Tensor RandomStart(Tensor x, Norm norm, double eps, RandomSource g)
    {
        using var scope = NewDisposeScope();
        Tensor delta;
        if (norm == Norm.Linf) delta = g.Rand(x.shape).to(x.dtype).to(x.device).Times(2).Minus(1).Times(eps);
        else
        {
            long d = x[0].numel();
            var dir = g.Randn(x.shape).to(x.dtype).to(x.device);
            dir = dir / dir.flatten(1).norm(1).view(-1, 1, 1, 1);
            using var exponent = (1.0 / d).ToScalar();
            var r = g.Rand(new long[] { x.shape[0], 1, 1, 1 }).to(x.dtype).to(x.device).pow(exponent).Times(eps);
            delta = dir * r;
        }
        return x.Plus(delta).ClampedToUnit().MoveToOuterDisposeScope();
    }
}
