using Adp.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Adp.Attacks;

/// <summary>
/// Auto-PGD (Croce &amp; Hein 2020) as AutoAttack's reference implementation, <c>APGDAttack.attack_single_run</c> in
/// <c>autoattack/autopgd_base.py</c> (fra31/auto-attack at a392200), for ℓ∞ and ℓ2:
/// <list type="bullet">
/// <item>start (l. 206–213, 230): x + ε·t/‖t‖ with t uniform in [−1,1] per pixel (ℓ∞, divided by max|t|) or standard
/// normal (ℓ2), clipped to [0,1] — on the sphere of the ball, not inside it; without a random start, x itself;</item>
/// <item>step size 2ε (l. 293–295); momentum a = 1 at the first iteration, 0.75 after (l. 326–334);</item>
/// <item>checkpoints every k iterations, k from ⌊0.22 n⌋ shrinking by ⌊0.03 n⌋ to at least ⌊0.06 n⌋ (each ≥ 1; l. 153–155, 424);</item>
/// <item>at a checkpoint the step is halved and the point and gradient reset to the best ones (l. 416–422) where the
/// loss rose in at most 75% of the last k steps (check_oscillation, l. 166–171, 407) or where it did not improve
/// since the last checkpoint and the step was not halved there (l. 409–413). The "halved at the last checkpoint" flag
/// starts true (l. 315), so the first checkpoint never halves for lack of improvement. The k comparisons run over the
/// per-iteration losses without the starting loss (l. 233, 396): at the first checkpoint the oldest one is
/// loss_steps[0] &gt; loss_steps[−1], which Python reads as the not yet written last row, 0 — reproduced here.</item>
/// </list>
/// Returns the point of highest loss found, the reference's <c>perturb(best_loss=True)</c> (l. 526–540), which also
/// keeps the best of several restarts. Use with CE or DLR loss. <see cref="ThreatModel.StepSize"/> is ignored.
/// Known difference: with EOT the reference judges progress by the last sample's loss (l. 364–379); the attack
/// models here return the mean over the samples.
/// </summary>
public sealed class Apgd(ThreatModel threat) : IAttack
{
    public ThreatModel Threat { get; } = threat;
    public string Describe() => $"APGD {Threat.Describe()} (step size adaptive from 2ε)";

    /// <summary>Called at every checkpoint with (iteration i, per-image step sizes after it (N), per-image "halved
    /// here" flags (N)); for diagnostics and tests. The tensors are the attack's own: copy what you keep.</summary>
    public Action<int, Tensor, Tensor>? OnCheckpoint { get; init; }

    /// <summary>Called with (k, best point after k iterations) for k = 0 … Iterations of every restart: the point APGD
    /// would return if stopped there. Unlike PGD's iterate this is not exactly a k-iteration APGD's result (the step
    /// schedule depends on the total n), but it is the robust accuracy vs iterations curve of this run, the one used to
    /// judge whether more iterations would help. The tensor is the attack's own: copy what you keep.</summary>
    public Action<int, Tensor>? OnIterate { get; init; }

    /// <inheritdoc/>
    /// <exception cref="AdpException">Invalid threat model, images or labels, or a loss the classifier cannot take.</exception>
    public Tensor Perturb(IAttackModel model, Tensor images, Tensor labels, RandomSource? random = null) =>
        Restarts.Run(Threat, model, images, labels, random, (m, y, g) => RunOnce(m, images, y, g));

    /// <summary>The checkpoint schedule of the reference for n iterations: the first k and how it shrinks.</summary>
    internal static (int First, int Min, int Decrement) Schedule(int n) =>
        (Math.Max((int)(0.22 * n), 1), Math.Max((int)(0.06 * n), 1), Math.Max((int)(0.03 * n), 1));

    private (Tensor Adv, Tensor? Loss) RunOnce(IAttackModel model, Tensor x, Tensor y, RandomSource g)
    {
        var t = Threat;
        int n = t.Iterations;
        var (k, kMin, decrement) = Schedule(n);
        long batch = x.shape[0];
        var adv = t.RandomStart && t.Epsilon > 0 ? Start(x, t.Norm, t.Epsilon, g) : x.clone();
        var (loss, grad) = model.LossAndDirection(adv, y, t.Loss, g);
        var bestAdv = adv.clone();
        var bestLoss = loss.clone();
        var bestGrad = grad.clone();
        OnIterate?.Invoke(0, bestAdv);
        // Scalars in this loop are held through each native call (see RootedScalars).
        using var twoEpsilon = (2 * t.Epsilon).ToScalar();
        var step = full(new long[] { batch, 1, 1, 1 }, twoEpsilon, dtype: x.dtype, device: x.device);
        // loss_steps of the reference: the loss after step i in row i, rows not yet written are 0.
        var lossSteps = zeros(new long[] { Math.Max(n, 1), batch }, dtype: loss.dtype, device: x.device);
        var advOld = adv.clone();
        var lossAtLastCheck = bestLoss.clone();
        var reducedAtLastCheck = ones(new long[] { batch }, ScalarType.Bool, device: x.device);
        int counter = 0;
        for (int i = 0; i < n; i++)
        {
            using var scope = NewDisposeScope();
            var momentum = adv - advOld;
            advOld = adv.clone().MoveToOuterDisposeScope();
            double a = i > 0 ? 0.75 : 1.0;
            var stepped = t.Norm == Norm.Linf && model.Kind == DirectionKind.Ascent ? step * grad.sign()
                : t.Norm == Norm.Linf ? step * grad
                : step * grad / grad.flatten(1).norm(1).view(-1, 1, 1, 1).Plus(1e-12);
            var z = Projection.Project(adv.Plus(stepped), x, t.Norm, t.Epsilon);
            adv = Projection.Project(adv.Plus((z - adv).Times(a)).Plus(momentum.Times(1 - a)), x, t.Norm, t.Epsilon).MoveToOuterDisposeScope();
            var (l, gr) = model.LossAndDirection(adv, y, t.Loss, g);
            loss = l.MoveToOuterDisposeScope();
            grad = gr.MoveToOuterDisposeScope();
            lossSteps[i].copy_(loss);
            var improved = loss.gt(bestLoss);
            bestAdv = where(improved.view(-1, 1, 1, 1), adv, bestAdv).MoveToOuterDisposeScope();
            bestGrad = where(improved.view(-1, 1, 1, 1), grad, bestGrad).MoveToOuterDisposeScope();
            bestLoss = where(improved, loss, bestLoss).MoveToOuterDisposeScope();
            OnIterate?.Invoke(i + 1, bestAdv);
            if (++counter < k) continue;
            // Checkpoint: in how many of the last k steps did the loss rise? Row −1 wraps to the last row (l. 169).
            var increases = zeros(new long[] { batch }, device: x.device);
            for (int c = 0; c < k; c++)
            {
                int prev = ((i - c - 1) % n + n) % n;
                increases = increases.Plus(lossSteps[i - c].gt(lossSteps[prev]).to(increases.dtype));
            }
            using var limit = (k * 0.75).ToScalar();
            var oscillating = increases.le(limit);
            var noImprovement = reducedAtLastCheck.logical_not().logical_and(lossAtLastCheck.ge(bestLoss));
            var reduce = oscillating.logical_or(noImprovement);
            reducedAtLastCheck = reduce.MoveToOuterDisposeScope();
            lossAtLastCheck = bestLoss.clone().MoveToOuterDisposeScope();
            var r4 = reduce.view(-1, 1, 1, 1);
            step = where(r4, step.Over(2), step).MoveToOuterDisposeScope();
            adv = where(r4, bestAdv, adv).MoveToOuterDisposeScope();
            grad = where(r4, bestGrad, grad).MoveToOuterDisposeScope();
            OnCheckpoint?.Invoke(i, step.view(-1), reduce);
            counter = 0;
            k = Math.Max(k - decrement, kMin);
        }
        return (bestAdv, bestLoss);
    }

    /// <summary>The reference's random start (l. 206–213, 230): x + ε·t/‖t‖ (max norm for ℓ∞ with t uniform in [−1,1],
    /// ℓ2 norm with t standard normal), clipped to [0,1].</summary>
    internal static Tensor Start(Tensor x, Norm norm, double eps, RandomSource g)
    {
        using var scope = NewDisposeScope();
        Tensor dir;
        if (norm == Norm.Linf)
        {
            var u = g.Rand(x.shape).to(x.dtype).to(x.device).Times(2).Minus(1);
            dir = u / u.abs().flatten(1).max(1).values.view(-1, 1, 1, 1).Plus(1e-12);
        }
        else
        {
            var u = g.Randn(x.shape).to(x.dtype).to(x.device);
            dir = u / u.flatten(1).norm(1).view(-1, 1, 1, 1).Plus(1e-12);
        }
        return x.Plus(dir.Times(eps)).ClampedToUnit().MoveToOuterDisposeScope();
    }
}
