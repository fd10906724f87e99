using Adp.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Adp.Purification;

// Differentiable forms of the variants in Variants.cs, for full-gradient attacks on a defense that runs a variant. Each
// draws its noise from the source in the order its IPurifier draws it, so the forward value is that purifier's.

/// <summary>Re-injection (<see cref="ReinjectionPurifier"/>) with autograd: one <see cref="DifferentiablePurifier"/> per
/// stage (σ_k, the settings' T and λ), each drawing fresh noise from the same rows, the gradient flowing through every
/// stage (step sizes and stopping detached within each, as in ADP's).</summary>
/// <param name="score">The score network h (frozen).</param>
/// <param name="settings">ADP settings of each stage; their σ is replaced by the stage's.</param>
/// <param name="sigmas">The stages' σ, in order (at least one).</param>
public sealed class DifferentiableReinjection(nn.Module<Tensor, Tensor> score, PurifierSettings settings, IReadOnlyList<double> sigmas)
    : IDifferentiablePurifier
{
    public nn.Module<Tensor, Tensor> Score { get; } = score;

    /// <summary>Each stage's <see cref="DifferentiablePurifier.Checkpointing"/>.</summary>
    public bool Checkpointing { get; init; } = true;

    public string Describe() => $"ADP with re-injection σ = {string.Join(" → ", sigmas)}; each stage {settings.DescribeSteps()}";

    /// <exception cref="AdpException">no σ.</exception>
    public Tensor Purify(Tensor x, RandomSource random)
    {
        if (sigmas.Count == 0) throw new AdpException("re-injection: expected at least one σ");
        using var scope = NewDisposeScope();
        var cur = x;
        foreach (var sigma in sigmas)
            cur = new DifferentiablePurifier(Score, settings with { Sigma = sigma }) { Checkpointing = Checkpointing }.Purify(cur, random);
        return cur.MoveToOuterDisposeScope();
    }
}

/// <summary>One-shot Tweedie denoising (<see cref="TweediePurifier"/>) with autograd: x₀ = clip(x + σε),
/// x̂ = clip(x₀ + σ·h(x₀)), differentiated as written (zero gradient at clipped pixels); an image whose score is not finite
/// keeps x₀, as there.</summary>
public sealed class DifferentiableTweedie(nn.Module<Tensor, Tensor> score, double sigma) : IDifferentiablePurifier
{
    public nn.Module<Tensor, Tensor> Score { get; } = score;

    public string Describe() => $"one-shot Tweedie σ={sigma}";

    public Tensor Purify(Tensor x, RandomSource random)
    {
        using var eval = EvalMode.Enter(Score);
        using var scope = NewDisposeScope();
        using var s = sigma.ToScalar();  // held: see RootedScalars
        var x0 = x.Plus(random.Randn(x.shape).to(x.dtype).to(x.device).mul(s)).clamp(RootedScalars.IntZero, RootedScalars.IntOne);
        var h = Score.forward(x0);
        Tensor usable;
        using (no_grad()) usable = TweediePurifier.FiniteRows(h);
        if (!usable.all().item<bool>())
        {
            // A row whose score is not finite keeps x₀; its graph must not run through the network, whose backward pass would
            // turn the non-finite activations into a NaN gradient (0·∞). The usable rows are recomputed alone.
            var idx = usable.nonzero().flatten();
            var stepped = x0.index_select(0, idx).Plus(Score.forward(x0.index_select(0, idx)).mul(s)).clamp(RootedScalars.IntZero, RootedScalars.IntOne);
            return x0.index_copy(0, idx, stepped).MoveToOuterDisposeScope();
        }
        return x0.Plus(h.mul(s)).clamp(RootedScalars.IntZero, RootedScalars.IntOne).MoveToOuterDisposeScope();
    }
}
