using Adp.Models;
using Adp.Purification;
using TorchSharp;
using static TorchSharp.torch;

namespace Adp.Attacks;

/// <summary>How an attack turns an attack model's direction d into a step of size α.</summary>
public enum DirectionKind
{
    /// <summary>An ascent direction (a gradient or an estimate of one): the attack takes its steepest-ascent step,
    /// α·sign(d) (ℓ∞) or α·d/‖d‖₂ (ℓ2).</summary>
    Ascent,
    /// <summary>Already the per-pixel ℓ∞ step in units of α, entries in [−1, 1]: the attack steps by α·d. Only for
    /// ℓ∞ threat models (e.g. score-aware BPDA, whose half steps a sign would turn into full ones).</summary>
    Step,
}

/// <summary>
/// What an attack sees of the model under attack: a per-image loss and an ascent direction with respect to
/// the input. For a plain classifier it is the loss gradient; for a randomized defense it is an EOT
/// estimate (BPDA or full gradient) over fresh purification noise. Implementations run the networks they call in
/// evaluation mode (<see cref="EvalMode"/>) and leave every module's training flag and buffers as they found them.
/// </summary>
public interface IAttackModel
{
    string Describe();

    /// <summary>Per-image loss (N) and direction (N×C×H×W) at x (N×C×H×W in [0,1]) for labels y (N, any integer dtype);
    /// EOT noise comes from <paramref name="random"/> (N rows). <see cref="Kind"/> says how to step along it.</summary>
    (Tensor Loss, Tensor Direction) LossAndDirection(Tensor x, Tensor y, AttackLoss loss, RandomSource random);

    /// <summary>How the direction becomes a step; <see cref="DirectionKind.Ascent"/> unless a model says otherwise.</summary>
    DirectionKind Kind => DirectionKind.Ascent;

    /// <summary>The model an attack with <paramref name="threat"/> should use: itself, unless its estimate depends on
    /// the threat model (the paper's BPDA rule takes a one-step attack of size 0.25ε at each purified copy). Attacks
    /// call it once, before any work.</summary>
    /// <exception cref="AdpException">The model cannot serve this threat model (e.g. an ℓ∞-only rule under ℓ2).</exception>
    IAttackModel ForThreat(ThreatModel threat) => this;

    /// <summary>Checks, before an attack spends any work, that the loss is defined for these inputs (DLR needs ≥ 3
    /// classes) and that y holds N valid class indices. Attacks call it once at the start; the default checks nothing.</summary>
    /// <exception cref="AdpException">The loss or the labels do not fit the classifier.</exception>
    void CheckInputs(Tensor x, Tensor y, AttackLoss loss) { }
}

/// <summary>The bare classifier: exact gradients.</summary>
public sealed class ClassifierModel(nn.Module<Tensor, Tensor> classifier) : IAttackModel
{
    public string Describe() => "bare classifier";

    /// <summary>The loss and its gradient at x, with the classifier in evaluation mode (its flags restored after).</summary>
    public (Tensor Loss, Tensor Direction) LossAndDirection(Tensor x, Tensor y, AttackLoss loss, RandomSource random)
    {
        using var eval = EvalMode.Enter(classifier);
        return Gradient(classifier, x, y, loss);
    }

    public void CheckInputs(Tensor x, Tensor y, AttackLoss loss) => Check(classifier, x, y, loss);

    /// <summary>Per-image loss and its input gradient; the caller sets the classifier's mode.</summary>
    internal static (Tensor Loss, Tensor Grad) Gradient(nn.Module<Tensor, Tensor> classifier, Tensor x, Tensor y, AttackLoss loss)
    {
        using var enable = enable_grad();
        using var scope = NewDisposeScope();
        var xr = x.detach().requires_grad_(true);
        var l = Losses.PerImage(classifier.forward(xr), y, loss);
        Tensor grad;
        using (NativeRuntime.Backward()) grad = autograd.grad([l.sum()], [xr])[0];
        return (l.detach().MoveToOuterDisposeScope(), grad.MoveToOuterDisposeScope());
    }

    /// <summary>One forward pass of the first image (evaluation mode, no gradient) gives the number of classes K;
    /// then <see cref="Losses.CheckClasses"/> and <see cref="Losses.Labels"/> (N labels in 0…K−1).</summary>
    internal static void Check(nn.Module<Tensor, Tensor> classifier, Tensor x, Tensor y, AttackLoss loss)
    {
        if (x.dim() < 1 || x.shape[0] == 0) return;
        using var eval = EvalMode.Enter(classifier);
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var logits = classifier.forward(x.narrow(0, 0, 1));
        if (logits.dim() != 2) throw new AdpException($"classifier: expected N×K logits, got shape [{string.Join(", ", logits.shape)}]");
        Losses.CheckClasses(loss, logits.shape[1]);
        Losses.Labels(y, x.shape[0], logits.shape[1]);
    }
}

/// <summary>How BPDA+EOT combines the n_EOT samples (purified copies p_j of x, classifier gradients ∇_j at p_j).</summary>
public enum BpdaAggregation
{
    /// <summary>A per-pixel vote of gradient signs, Σ_j sign(∇_j) (what METHOD.md §5 describes).</summary>
    SignVote,
    /// <summary>Standard EOT: the mean gradient (stronger).</summary>
    Mean,
    /// <summary>
    /// Score-aware, as the research code's <c>attacks/bpda_total.py</c> (jmyoon1/adp at 497e2d4, lines 17–43): the step
    /// is α·(sign(Σ_j u_j) + sign(Σ_j (p_j − x)))/2, with u_j the one-step updates of <see cref="Paper"/> and
    /// Σ_j (p_j − x) the purification displacement (line 33, <c>score_diff</c>). Where the two signs agree it is a full
    /// step, where one is zero a half step, where they disagree none. ℓ∞ only; a <see cref="DirectionKind.Step"/>.
    /// </summary>
    ScoreAware,
    /// <summary>
    /// The research code's rule (jmyoon1/adp at 497e2d4, <c>attacks/bpda_strong.py</c>, the attack_method of
    /// <c>configs/cifar10_bpda_eot_sigma025_eot15.yml</c>). Per iteration, lines 16–28: for each of the n_EOT samples,
    /// purify the current iterate once (line 19, <c>adp(…, mode="attack")</c>), run foolbox's
    /// <c>LinfPGD(rel_stepsize=0.25, steps=1, random_start=False)</c> at ε on the purified copy p_j (lines 23–24) — one
    /// signed CE-gradient step of size s = 0.25ε, clipped to the ε-ball around p_j (never binding) and to [0,1] — and
    /// add its update u_j = clip₀¹(p_j + s·sign(∇_j)) − p_j (line 28). Line 33 then steps by α·sign(Σ_j u_j), projected
    /// to the ε-ball and [0,1]; no random start (line 13), final iterate (line 35). It differs from
    /// <see cref="SignVote"/> where a copy sits at or near 0 or 1: its update is cut there, so it counts less or not at all.
    /// The direction is Σ_j u_j (PGD's ℓ∞ sign step gives the research step); ℓ∞ only.
    /// </summary>
    Paper,
}

/// <summary>
/// BPDA+EOT (Athalye et al. 2018 as used by the ADP paper): for each of n_EOT samples, purify the current point
/// with fresh noise (no gradient), take the loss gradient of the classifier at the purified image, and treat
/// purification as the identity in the backward pass; <see cref="BpdaAggregation"/> says how the samples combine.
/// The classifier and <paramref name="score"/> (the purifier's network, if given) run in evaluation mode.
/// </summary>
/// <param name="classifier">Maps N×C×H×W images in [0,1] to N×K logits.</param>
/// <param name="purifier">Purifies the n_EOT copies (it sets its own network's mode).</param>
/// <param name="eotSamples">n_EOT ≥ 1 (the paper: 15).</param>
/// <param name="aggregation">How the samples combine; see <see cref="BpdaAggregation"/>.</param>
/// <param name="score">The purifier's score network, put in evaluation mode with the classifier; optional.</param>
public sealed class BpdaEotModel(nn.Module<Tensor, Tensor> classifier, IPurifier purifier, int eotSamples,
    BpdaAggregation aggregation = BpdaAggregation.SignVote, nn.Module<Tensor, Tensor>? score = null) : IAttackModel
{
    /// <summary>The research code's one-step attack at each purified copy has size 0.25·ε (foolbox rel_stepsize).</summary>
    public const double PaperRelativeOneStep = 0.25;

    /// <summary>Per-copy bound on the float32 rounding of one update u_j = clip(p + s·sign) − p (a few ulps of 1, 6e-8 each).</summary>
    public const double TieTolerance = 1e-6;

    public string Describe() => $"BPDA+EOT ({aggregation}, n_EOT={eotSamples}) through {purifier.Describe()}";

    public BpdaAggregation Aggregation => aggregation;

    /// <summary>Images per purification batch: the n_EOT copies of a batch are purified together in chunks of this size.</summary>
    public int MaxBatch { get; init; } = 500;

    /// <summary>The size s of the one-step attack at each purified copy, for <see cref="BpdaAggregation.Paper"/> and
    /// <see cref="BpdaAggregation.ScoreAware"/>. Unset, <see cref="ForThreat"/> (which every attack calls) sets it to
    /// <see cref="PaperRelativeOneStep"/>·ε of the attack's threat model, as the research code did.</summary>
    public double? OneStepSize { get; init; }

    /// <summary><see cref="DirectionKind.Step"/> for <see cref="BpdaAggregation.ScoreAware"/> (its half steps), else ascent.</summary>
    public DirectionKind Kind => aggregation == BpdaAggregation.ScoreAware ? DirectionKind.Step : DirectionKind.Ascent;

    /// <summary>For the research rules (ℓ∞ only): this model with <see cref="OneStepSize"/> = 0.25ε unless set.</summary>
    /// <exception cref="AdpException">Paper or ScoreAware with an ℓ2 threat model.</exception>
    public IAttackModel ForThreat(ThreatModel threat)
    {
        if (aggregation is not (BpdaAggregation.Paper or BpdaAggregation.ScoreAware)) return this;
        if (threat.Norm != Norm.Linf)
            throw new AdpException($"BPDA {aggregation}: the research code's rule is ℓ∞ (a foolbox LinfPGD step per copy); " +
                                   "use norm linf, or aggregation SignVote or Mean under ℓ2");
        return OneStepSize is not null ? this
            : new BpdaEotModel(classifier, purifier, eotSamples, aggregation, score)
            {
                MaxBatch = MaxBatch, OneStepSize = PaperRelativeOneStep * threat.Epsilon,
            };
    }

    public void CheckInputs(Tensor x, Tensor y, AttackLoss loss) => ClassifierModel.Check(classifier, x, y, loss);

    /// <summary>Mean loss over the n_EOT purified copies (N) and the aggregated direction (N×C×H×W); see
    /// <see cref="BpdaAggregation"/>.</summary>
    /// <exception cref="AdpException">n_EOT &lt; 1; Paper or ScoreAware without <see cref="OneStepSize"/> (call
    /// <see cref="ForThreat"/> first, as attacks do).</exception>
    public (Tensor Loss, Tensor Direction) LossAndDirection(Tensor x, Tensor y, AttackLoss loss, RandomSource random)
    {
        if (eotSamples < 1) throw new AdpException($"--eot: expected at least 1, got {eotSamples}");
        bool research = aggregation is BpdaAggregation.Paper or BpdaAggregation.ScoreAware;
        if (research && OneStepSize is null)
            throw new AdpException($"BPDA {aggregation}: needs the one-step size (0.25ε in the research code); " +
                                   "set OneStepSize or run it through an attack, which binds it to the threat model's ε");
        using var eval = EvalMode.Enter(classifier, score);
        using var scope = NewDisposeScope();
        long n = x.shape[0];
        // All n_EOT purifications of the batch go through the score network together (sample-major rows).
        var copies = x.detach().repeat(eotSamples, 1, 1, 1);
        var ys = y.repeat(eotSamples);
        var noise = random.Repeat(eotSamples);
        var losses = new List<Tensor>();
        var grads = new List<Tensor>();
        var purified = new List<Tensor>();
        for (long start = 0; start < copies.shape[0]; start += MaxBatch)
        {
            long m = Math.Min(MaxBatch, copies.shape[0] - start);
            using var r = purifier.Purify(copies.narrow(0, start, m), noise.Narrow(start, m));
            var (l, grad) = ClassifierModel.Gradient(classifier, r.Images, ys.narrow(0, start, m), loss);
            losses.Add(l);
            grads.Add(grad);
            if (research) purified.Add(r.Images.detach().clone());
        }
        long[] shape = [eotSamples, n, .. x.shape.Skip(1)];
        var perSample = cat(grads).view(shape);
        Tensor direction;
        using (no_grad())
        {
            switch (aggregation)
            {
                case BpdaAggregation.Mean:
                    direction = perSample.mean([0]);
                    break;
                case BpdaAggregation.SignVote:
                    direction = perSample.sign().sum(dim: 0);
                    break;
                default:
                {
                    var p = cat(purified).view(shape);
                    var updates = p.Plus(perSample.sign().Times(OneStepSize!.Value)).ClampedToUnit() - p;  // u_j, bpda_strong.py l. 24–28
                    direction = updates.sum(dim: 0);
                    // Where the copies' updates cancel (a tie: as many +s as −s), the float sum is a rounding residue whose
                    // sign would follow the last bits of the purified images; count it as zero, so ties do not step and the
                    // result does not depend on batch composition. The residue is ≤ n_EOT float32 roundings of [0,1] values.
                    using var tie = (TieTolerance * eotSamples).ToScalar();  // held: see RootedScalars
                    direction = direction.masked_fill(direction.abs().le(tie), RootedScalars.IntZero);
                    if (aggregation == BpdaAggregation.ScoreAware)
                    {
                        var displacement = (p - x.detach().unsqueeze(0)).sum(dim: 0);  // score_diff, bpda_total.py l. 33
                        direction = direction.sign().Plus(displacement.sign()).Over(2);  // totalsign, l. 38–42
                    }
                    break;
                }
            }
        }
        var meanLoss = cat(losses).view(eotSamples, n).mean([0]);
        return (meanLoss.MoveToOuterDisposeScope(), direction.MoveToOuterDisposeScope());
    }
}

/// <summary>
/// The full-gradient adaptive attack: differentiates through the purifier itself (network calls and updates;
/// step sizes detached) and averages the gradient over n_EOT fresh noise draws. The classifier and the purifier's
/// score network run in evaluation mode (also during the backward pass, which recomputes the network where the purifier
/// checkpoints its steps).
/// </summary>
public sealed class FullGradientEotModel(nn.Module<Tensor, Tensor> classifier, IDifferentiablePurifier purifier, int eotSamples) : IAttackModel
{
    public string Describe() => $"full gradient through {purifier.Describe()}, EOT n={eotSamples}";

    /// <summary>Purify the n_EOT copies of a batch together (default), in differentiable purifications of at most
    /// <see cref="MaxBatch"/> rows; false: one copy of the batch at a time, as Croce et al.'s <c>diff_adp</c> loop does.
    /// Same gradient estimator either way; batching fills the network calls (a batch of 8 images at EOT 20 is 160 rows).</summary>
    public bool BatchCopies { get; init; } = true;

    /// <summary>Rows (image copies) per differentiable purification when <see cref="BatchCopies"/>; bounds memory, which
    /// with per-step checkpointing is about (T + 1) stored iterates per row plus one network chunk's graph and the
    /// classifier's graph of all rows. Default: the score network's chunk (<see cref="AdaptiveStepPurifier.ChunkFor"/>:
    /// 32 at 28×28 ngf 16, 16 for CIFAR-10 ngf 32), so each purification fills its network calls and no more; larger
    /// groups were slower (160 rows against 8–32: ~10% on MNIST, ~25% on CIFAR-10, docs/BENCHMARKS.md). The grouping
    /// changes the gradient only by float32 round-off (each row's noise is fixed by its index).</summary>
    public int MaxBatch { get; init; } = AdaptiveStepPurifier.ChunkFor(purifier.Score);

    /// <summary>Mean loss (N) over n_EOT noise draws and the mean gradient (N×C×H×W) of the per-image loss through the
    /// whole purifier (α and stopping detached). Copy j of image i draws its noise from row j·N + i of
    /// <paramref name="random"/>.Repeat(n_EOT) when batched.</summary>
    public (Tensor Loss, Tensor Direction) LossAndDirection(Tensor x, Tensor y, AttackLoss loss, RandomSource random)
    {
        if (eotSamples < 1) throw new AdpException($"--eot: expected at least 1, got {eotSamples}");
        if (MaxBatch < 1) throw new AdpException($"full-gradient EOT: MaxBatch must be ≥ 1, got {MaxBatch}");
        using var eval = EvalMode.Enter(classifier, purifier.Score);
        using var scope = NewDisposeScope();
        long n = x.shape[0];
        var leaf = x.detach().requires_grad_(true);
        var gradSum = zeros_like(x);
        var lossSum = zeros(new long[] { n }, dtype: x.dtype, device: x.device);
        if (BatchCopies)
        {
            var noise = random.Repeat(eotSamples);
            for (long start = 0; start < eotSamples * n; start += MaxBatch)
            {
                using var inner = NewDisposeScope();
                using var enable = enable_grad();
                long m = Math.Min(MaxBatch, eotSamples * n - start);
                using Scalar from = start.ToScalar(), to = (start + m).ToScalar(), images = n.ToScalar();  // held: see RootedScalars
                var idx = arange(from, to, RootedScalars.IntOne, ScalarType.Int64, x.device).remainder(images);  // image of each row
                var rows = leaf.index_select(0, idx);
                var l = Losses.PerImage(classifier.forward(purifier.Purify(rows, noise.Narrow(start, m))), y.index_select(0, idx), loss);
                using (NativeRuntime.Backward()) gradSum.add_(autograd.grad([l.sum()], [leaf])[0], RootedScalars.IntOne);
                lossSum.index_add_(0, idx, l.detach(), RootedScalars.IntOne);
            }
        }
        else
        {
            for (int j = 0; j < eotSamples; j++)
            {
                using var inner = NewDisposeScope();
                using var enable = enable_grad();
                var l = Losses.PerImage(classifier.forward(purifier.Purify(leaf, random)), y, loss);
                using (NativeRuntime.Backward()) gradSum.add_(autograd.grad([l.sum()], [leaf])[0], RootedScalars.IntOne);
                lossSum.add_(l.detach(), RootedScalars.IntOne);
            }
        }
        return (lossSum.Over(eotSamples).MoveToOuterDisposeScope(), gradSum.Over(eotSamples).MoveToOuterDisposeScope());
    }

    public void CheckInputs(Tensor x, Tensor y, AttackLoss loss) => ClassifierModel.Check(classifier, x, y, loss);
}
