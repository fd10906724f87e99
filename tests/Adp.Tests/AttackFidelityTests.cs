using Adp.Attacks;
using Adp.Models;
using Adp.Purification;
using TorchSharp;
using static TorchSharp.torch;

namespace Adp.Tests;

/// <summary>The attacks against their references: the ADP research code's BPDA rules (jmyoon1/adp,
/// attacks/bpda_strong.py and bpda_total.py), AutoAttack's APGD (fra31/auto-attack, autopgd_base.py), and the
/// checks every attack makes before any work (cases 6 and 7).</summary>
public partial class AttackTests
{
    /// <summary>A 3-class linear classifier on 1×4×4 images with its weights, for hand-computed gradients.</summary>
    private static (Linear4 Model, Tensor W, Tensor B) ThreeClassLinear(int seed = 21)
    {
        var g = new Generator((ulong)seed, CPU);
        var w = randn(new long[] { 3, 16 }, generator: g);
        var b = randn(3, generator: g);
        return (new Linear4(w, b), w, b);
    }

    /// <summary>A purifier that adds a fixed shift to its input, a different one per call (then clips to [0,1]); with
    /// MaxBatch = N every call purifies one EOT copy of the batch. Counts its calls.</summary>
    private sealed class ShiftPurifier(params float[] shifts) : IPurifier
    {
        public int Calls { get; private set; }
        public string Describe() => "shift";
        public PurificationResult Purify(Tensor x, RandomSource random, bool keepTrajectory = false)
        {
            float c = shifts[Calls++ % shifts.Length];
            return new()
            {
                Images = x.Plus(c).ClampedToUnit(), StepSizes = zeros(1, x.shape[0]),
                StepsTaken = zeros(new long[] { x.shape[0] }, ScalarType.Int64),
            };
        }
    }

    /// <summary>A score network given by a function.</summary>
    private sealed class ScoreFn(Func<Tensor, Tensor> f) : nn.Module<Tensor, Tensor>("fn")
    {
        public override Tensor forward(Tensor x) => f(x);
    }

    /// <summary>∇_x CE(Wx + b, y) = Wᵀ(softmax(Wx + b) − e_y), per image, by hand (no autograd).</summary>
    private static Tensor CeGradient(Tensor p, Tensor w, Tensor b, Tensor y)
    {
        var logits = p.flatten(1).matmul(w.t()).Plus(b);
        var probs = logits.softmax(1) - nn.functional.one_hot(y, 3).to(ScalarType.Float32);
        return probs.matmul(w).view(p.shape);
    }

    /// <summary>The research code's per-iteration BPDA quantities at x: Σ_j u_j with
    /// u_j = clip₀¹(p_j + 0.25ε·sign ∇_j) − p_j (bpda_strong.py l. 23–28) and Σ_j (p_j − x) (bpda_total.py l. 33).</summary>
    private static (Tensor Updates, Tensor Displacement) ResearchSums(Tensor x, Tensor y, float[] shifts, double eps, Tensor w, Tensor b)
    {
        var updates = zeros_like(x);
        var displacement = zeros_like(x);
        foreach (var c in shifts)
        {
            var p = x.Plus(c).ClampedToUnit();
            var u = p.Plus(CeGradient(p, w, b, y).sign().Times(0.25 * eps)).ClampedToUnit() - p;
            updates = updates.Plus(u);
            displacement = displacement.Plus(p - x);
        }
        return (updates, displacement);
    }

    private static Tensor OnePgdIteration(IAttackModel model, Tensor x, Tensor y, double eps, double alpha) =>
        new Pgd(new ThreatModel(Norm.Linf, eps, alpha, Iterations: 1, RandomStart: false)).Perturb(model, x, y);

    /// <summary>Images with pixels at 0, near 0, near 1 and 1, where the research rule and the sign vote differ.</summary>
    private static Tensor EdgeImages()
    {
        var x = rand(new long[] { 4, 1, 4, 4 }, generator: new Generator(8, CPU));
        x.view(-1).narrow(0, 0, 8).copy_(tensor(new float[] { 0, 1, 0.01f, 0.99f, 0, 1, 0.02f, 0.97f }));
        return x;
    }

    [Theory]
    [InlineData(new float[] { 0f, 0f, 0f })]          // identity purifier, three copies
    [InlineData(new float[] { 0.3f })]                // a purifier that shifts its input up (copies clip at 1)
    [InlineData(new float[] { 0.3f, -0.25f, 0.05f })] // three copies shifted differently: clipped updates count less
    public void BpdaPaper_OnePgdIteration_EqualsTheResearchCodeByHand(float[] shifts)
    {
        var (model, w, b) = ThreeClassLinear();
        var x = EdgeImages();
        var y = tensor(new long[] { 0, 1, 2, 1 });
        double eps = 0.1, alpha = 0.03;
        var bpda = new BpdaEotModel(model, new ShiftPurifier(shifts), shifts.Length, BpdaAggregation.Paper) { MaxBatch = 4 };
        var adv = OnePgdIteration(bpda, x, y, eps, alpha);

        // bpda_strong.py l. 33: x₁ = clip₀¹(x + clip(x₀ − x + α·sign(Σ_j u_j), −ε, ε)) with x₀ = x (no random start).
        // Exact ties (as many +s as −s updates) leave only a float rounding residue in Σ_j u_j; the toolkit counts it as zero
        // (see BpdaEotModel.TieTolerance), where the research code stepped by the residue's arbitrary sign.
        var (updates, _) = ResearchSums(x, y, shifts, eps, w, b);
        using TorchSharp.Scalar tie = BpdaEotModel.TieTolerance * shifts.Length;
        updates = updates.masked_fill(updates.abs().le(tie), RootedScalars.IntZero);
        var expected = x.Plus(updates.sign().Times(alpha).Clamped(-eps, eps)).ClampedToUnit();
        Assert.True((adv - expected).abs().max().item<float>() < 1e-6, "one PGD iteration differs from the research rule");

        if (shifts.Any(c => c != 0))
        {
            // Not the sign vote: a copy clipped at 0 or 1 contributes a cut update (or none) instead of a full vote.
            var signVote = new BpdaEotModel(model, new ShiftPurifier(shifts), shifts.Length) { MaxBatch = 4 };
            var vote = OnePgdIteration(signVote, x, y, eps, alpha);
            Assert.True((vote - expected).abs().max().item<float>() > 1e-3, "the test input does not tell the rules apart");
        }
    }

    [Fact]
    public void BpdaPaper_OneStepSize_IsAQuarterOfEpsilonAsInTheResearchCode()
    {
        var (model, w, b) = ThreeClassLinear();
        var x = EdgeImages();
        var y = tensor(new long[] { 0, 1, 2, 1 });
        float[] shifts = [0.3f, -0.25f, 0.05f];
        var bpda = new BpdaEotModel(model, new ShiftPurifier(shifts), 3, BpdaAggregation.Paper) { MaxBatch = 4 };
        var bound = (BpdaEotModel)((IAttackModel)bpda).ForThreat(new ThreatModel(Epsilon: 0.2));
        Assert.Equal(0.05, bound.OneStepSize!.Value, 12);
        using var g = new Generator(1, CPU);
        var (_, direction) = bound.LossAndDirection(x, y, AttackLoss.CrossEntropy, g);
        var (updates, _) = ResearchSums(x, y, shifts, 0.2, w, b);
        Assert.True((direction - updates).abs().max().item<float>() < 1e-6);
        // Called directly, without an attack to bind ε, the rule refuses rather than guess a step.
        Assert.Throws<AdpException>(() => bpda.LossAndDirection(x, y, AttackLoss.CrossEntropy, g));
    }

    [Fact]
    public void BpdaScoreAware_TakesTheResearchCodesHalfSteps()
    {
        var (model, w, b) = ThreeClassLinear();
        var x = EdgeImages();
        var y = tensor(new long[] { 0, 1, 2, 1 });
        // Both copies of a pixel above 0.7 clip at 1: where the gradient pushes up, Σ u_j = 0 and the step is a half one.
        float[] shifts = [0.3f, 0.5f];
        double eps = 0.1, alpha = 0.03;
        var bpda = new BpdaEotModel(model, new ShiftPurifier(shifts), 2, BpdaAggregation.ScoreAware) { MaxBatch = 4 };
        var adv = OnePgdIteration(bpda, x, y, eps, alpha);
        // bpda_total.py l. 38–43: totalsign = (sign(Σ u_j) + sign(Σ (p_j − x)))/2; x₁ = clip₀¹(x + clip(α·totalsign, ±ε)).
        var (updates, displacement) = ResearchSums(x, y, shifts, eps, w, b);
        var total = updates.sign().Plus(displacement.sign()).Over(2);
        var expected = x.Plus(total.Times(alpha).Clamped(-eps, eps)).ClampedToUnit();
        Assert.True((adv - expected).abs().max().item<float>() < 1e-6);
        // Half steps do occur on this input (a sign step would have made them full ones).
        var moved = (adv - x).abs();
        using TorchSharp.Scalar tiny = 1e-6, half = 0.5f;
        Assert.True(moved.Minus(alpha / 2).abs().lt(tiny).any().item<bool>(), "no half step on the test input");
        Assert.True(total.abs().eq(half).any().item<bool>());
    }

    [Fact]
    public void BpdaResearchRules_RefuseL2_BeforeAnyPurification()
    {
        var (model, _, _) = ThreeClassLinear();
        var x = EdgeImages();
        var y = tensor(new long[] { 0, 1, 2, 1 });
        foreach (var rule in new[] { BpdaAggregation.Paper, BpdaAggregation.ScoreAware })
        {
            var purifier = new ShiftPurifier(0.1f);
            var e = Assert.Throws<AdpException>(() =>
                new Pgd(new ThreatModel(Norm.L2, 1.0, 0.2, 2)).Perturb(new BpdaEotModel(model, purifier, 2, rule), x, y));
            Assert.Contains("ℓ∞", e.Message);
            Assert.Equal(0, purifier.Calls);
        }
    }

    /// <summary>An attack model that counts its calls and records the points it is asked about; its losses and
    /// directions follow a script (per call), so the attack's bookkeeping can be followed by hand.</summary>
    private sealed class ScriptedModel(Func<int, float> loss, Func<int, float> direction) : IAttackModel
    {
        public List<Tensor> Points { get; } = [];
        public int Calls => Points.Count;
        public string Describe() => "scripted";
        public (Tensor Loss, Tensor Direction) LossAndDirection(Tensor x, Tensor y, AttackLoss l, RandomSource random)
        {
            int call = Points.Count;
            Points.Add(x.clone().DetachFromDisposeScope());
            return (HeldScalars.Full([x.shape[0]], loss(call)), HeldScalars.Full(x.shape, direction(call)));
        }
    }

    /// <summary>Runs APGD on one 1-pixel image at 0.5 without random start and returns the checkpoints seen.</summary>
    private static List<(int Iteration, float Step, bool Halved)> ApgdCheckpoints(ScriptedModel model, int iterations, double eps)
    {
        var seen = new List<(int, float, bool)>();
        var apgd = new Apgd(new ThreatModel(Epsilon: eps, Iterations: iterations, RandomStart: false))
        {
            OnCheckpoint = (i, step, halved) => seen.Add((i, step[0].item<float>(), halved[0].item<bool>())),
        };
        apgd.Perturb(model, HeldScalars.Full([1, 1, 1, 1], 0.5f), tensor(new long[] { 0 }));
        return seen;
    }

    [Fact]
    public void Apgd_FirstCheckpoint_NeverHalvesForLackOfImprovement()
    {
        // 100 iterations: first checkpoint after k = 22 steps. The loss drops below its start value and then rises
        // at every step without getting back above it: no oscillation (22 rises counted, > 0.75k), no improvement.
        // The reference's reduced_last_check starts at 1 (autopgd_base.py l. 315), so it keeps the step 2ε; the old
        // code halved here.
        var model = new ScriptedModel(call => call == 0 ? 100f : call, _ => 1f);
        var seen = ApgdCheckpoints(model, 100, 0.1);
        Assert.Equal(21, seen[0].Iteration);
        Assert.False(seen[0].Halved);
        Assert.Equal(0.2f, seen[0].Step, 6);
        // At the second checkpoint (19 steps on, still below the start value) the "no improvement" rule does apply.
        Assert.Equal(40, seen[1].Iteration);
        Assert.True(seen[1].Halved);
        Assert.Equal(0.1f, seen[1].Step, 6);
    }

    [Fact]
    public void Apgd_FirstCheckpoint_ComparesTheOldestLossWithZeroAsTheReference()
    {
        // 10 iterations: k = 2. Losses −10 (start), −9, −8, …: every step improves. The reference counts
        // loss_steps[1] > loss_steps[0] (true) and loss_steps[0] > loss_steps[−1] = 0 (false for a negative loss):
        // 1 ≤ 0.75·2, so it halves. With positive losses 10, 11, 12, … it counts 2 and does not.
        var negative = ApgdCheckpoints(new ScriptedModel(call => call - 10f, _ => 1f), 10, 0.1);
        Assert.Equal(1, negative[0].Iteration);
        Assert.True(negative[0].Halved);
        var positive = ApgdCheckpoints(new ScriptedModel(call => call + 10f, _ => 1f), 10, 0.1);
        Assert.False(positive[0].Halved);
    }

    [Fact]
    public void Apgd_CheckpointSchedule_IsTheReferences()
    {
        // n = 100: k = 22, shrinking by 3 to at least 6 (autopgd_base.py l. 153–155, 424).
        var seen = ApgdCheckpoints(new ScriptedModel(call => call, _ => 1f), 100, 0.1);
        Assert.Equal(new[] { 21, 40, 56, 69, 79, 86, 92, 98 }, seen.Select(s => s.Iteration).ToArray());
        Assert.Equal((22, 6, 3), Apgd.Schedule(100));
        Assert.Equal((1, 1, 1), Apgd.Schedule(1));
    }

    [Fact]
    public void Apgd_MomentumAndBestPointRestart_FollowTheReferenceByHand()
    {
        // One pixel at 0.5, ε = 0.1 (step 0.2), 10 iterations (k = 2). Directions +1, −1, +1, …; losses 0, 5, 1, ….
        var model = new ScriptedModel(call => call switch { 0 => 0f, 1 => 5f, 2 => 1f, _ => 0f }, call => call % 2 == 0 ? 1f : -1f);
        var seen = ApgdCheckpoints(model, 10, 0.1);
        float[] points = model.Points.Take(4).Select(p => p.item<float>()).ToArray();
        // i = 0 (a = 1): z = P(0.5 + 0.2) = 0.6, x₁ = 0.6 (loss 5, the best).
        // i = 1 (a = 0.75): z = P(0.6 − 0.2) = 0.4, x₂ = 0.6 + 0.75·(0.4 − 0.6) + 0.25·(0.6 − 0.5) = 0.475 (loss 1).
        // Checkpoint at i = 1: rises 1 > 5 no, 5 > 0 (row −1) yes: 1 ≤ 0.75·2, so halve to 0.1 and restart from the
        // best point 0.6 with its direction (−1).
        // i = 2: momentum 0.6 − 0.6 = 0; z = P(0.6 − 0.1) = 0.5, x₃ = 0.6 + 0.75·(0.5 − 0.6) = 0.525.
        Assert.Equal(new[] { 0.5f, 0.6f, 0.475f, 0.525f }, points.Select(p => MathF.Round(p, 5)).ToArray());
        Assert.True(seen[0].Halved);
        Assert.Equal(0.1f, seen[0].Step, 6);
    }

    [Fact]
    public void Apgd_OnIterate_ReportsTheBestPointSoFar_EndingAtTheResult()
    {
        // Same script as above: points 0.5 (loss 0), 0.6 (loss 5), 0.475 (loss 1), 0.525 (loss 0), … so the best point
        // is the start, then 0.6 from iteration 1 on.
        var model = new ScriptedModel(call => call switch { 0 => 0f, 1 => 5f, 2 => 1f, _ => 0f }, call => call % 2 == 0 ? 1f : -1f);
        var seen = new List<(int K, float Point)>();
        var apgd = new Apgd(new ThreatModel(Epsilon: 0.1, Iterations: 6, RandomStart: false))
        {
            OnIterate = (k, best) => seen.Add((k, best.item<float>())),
        };
        var result = apgd.Perturb(model, HeldScalars.Full([1, 1, 1, 1], 0.5f), tensor(new long[] { 0 }));
        Assert.Equal(Enumerable.Range(0, 7), seen.Select(p => p.K));
        Assert.Equal(0.5f, seen[0].Point, 6);
        Assert.All(seen.Skip(1), p => Assert.Equal(0.6f, p.Point, 5));
        Assert.Equal(result.item<float>(), seen[^1].Point, 6);
    }

    [Fact]
    public void Apgd_RandomStart_IsOnTheSphereOfTheBall()
    {
        // autopgd_base.py l. 206–213: x + ε·t/max|t| (ℓ∞), x + ε·t/‖t‖₂ (ℓ2).
        var x = HeldScalars.Full([3, 1, 8, 8], 0.5f);
        var linf = Apgd.Start(x, Norm.Linf, 0.1, new Generator(3, CPU));
        Assert.True(((linf - x).abs().flatten(1).max(1).values.Minus(0.1f)).abs().max().item<float>() < 1e-6);
        var l2 = Apgd.Start(x, Norm.L2, 0.3, new Generator(3, CPU));
        Assert.True(((l2 - x).flatten(1).norm(1).Minus(0.3f)).abs().max().item<float>() < 1e-5);
    }

    [Theory]
    [InlineData(1, false, 5)]
    [InlineData(1, true, 6)]
    [InlineData(2, false, 12)]
    public void Pgd_ComputesTheFinalLossOnlyWhenItIsUsed(int restarts, bool best, int expectedCalls)
    {
        // Each LossAndDirection of an EOT model is a full EOT estimate: 5 iterations need 5; the loss at the final
        // iterate is needed only to pick the best iterate or the best restart.
        var model = new ScriptedModel(call => call, _ => 1f);
        var x = HeldScalars.Full([1, 1, 1, 1], 0.5f);
        new Pgd(new ThreatModel(Epsilon: 0.1, StepSize: 0.01, Iterations: 5, Restarts: restarts)) { ReturnBest = best }
            .Perturb(model, x, tensor(new long[] { 0 }));
        Assert.Equal(expectedCalls, model.Calls);
    }

    private static IEnumerable<IAttack> AllAttacks(AttackLoss loss) =>
    [
        new Fgsm(new ThreatModel(Epsilon: 0.1, Loss: loss)),
        new Pgd(new ThreatModel(Epsilon: 0.1, StepSize: 0.03, Iterations: 3, Loss: loss, Seed: 2)),
        new Pgd(new ThreatModel(Norm.L2, 0.5, 0.2, 3, Restarts: 2, Loss: loss, Seed: 2)) { ReturnBest = true },
        new Apgd(new ThreatModel(Epsilon: 0.1, Iterations: 4, Loss: loss, Seed: 2)),
    ];

    [Fact]
    public void Dlr_WithTwoClasses_IsAClearErrorBeforeAnyWork()
    {
        // Case 6: DLR divides by z_π1 − z_π3; with 2 classes torch failed with "index 2 is out of bounds".
        var (model, _) = TwoClassLinear();
        var x = rand(new long[] { 2, 1, 4, 4 }, generator: new Generator(4, CPU));
        var y = tensor(new long[] { 0, 1 });
        var e = Assert.Throws<AdpException>(() => Losses.PerImage(model.forward(x), y, AttackLoss.Dlr));
        Assert.Contains("at least 3 classes", e.Message);
        foreach (var attack in AllAttacks(AttackLoss.Dlr))
        {
            var purifier = new ShiftPurifier(0f);
            foreach (IAttackModel m in new IAttackModel[] { new ClassifierModel(model), new BpdaEotModel(model, purifier, 2) })
            {
                var err = Assert.Throws<AdpException>(() => attack.Perturb(m, x, y));
                Assert.Contains("at least 3 classes", err.Message);
            }
            Assert.Equal(0, purifier.Calls);  // refused before any purification
        }
        // Margin and CE are fine with 2 classes.
        Assert.Equal(2, Losses.PerImage(model.forward(x), y, AttackLoss.Margin).shape[0]);
    }

    [Theory]
    [InlineData(ScalarType.Int32)]
    [InlineData(ScalarType.Int16)]
    [InlineData(ScalarType.Int8)]
    [InlineData(ScalarType.Byte)]
    public void IntegerLabels_OfAnyDtype_WorkInEveryAttackAndLoss(ScalarType dtype)
    {
        // Case 7: int32 labels gave "expected scalar type Long but found Int".
        var (model, _, _) = ThreeClassLinear();
        var x = rand(new long[] { 3, 1, 4, 4 }, generator: new Generator(5, CPU));
        var y64 = tensor(new long[] { 0, 2, 1 });
        var y = y64.to(dtype);
        foreach (var loss in new[] { AttackLoss.CrossEntropy, AttackLoss.Margin, AttackLoss.Dlr })
        {
            var logits = model.forward(x);
            Assert.True(Losses.PerImage(logits, y, loss).equal(Losses.PerImage(logits, y64, loss)).all().item<bool>());
            var models = new IAttackModel[]
            {
                new ClassifierModel(model),
                new BpdaEotModel(model, new ShiftPurifier(0.1f), 2, BpdaAggregation.Mean),
                new FullGradientEotModel(model, new DifferentiablePurifier(new ScoreFn(v => v.SubtractedFrom(0.5f).Times(0.1f)),
                    new PurifierSettings(Sigma: 0.1, Steps: 2, Tau: 0)), 2),
            };
            foreach (var m in models)
                foreach (var attack in AllAttacks(loss))
                {
                    var a = attack.Perturb(m, x, y);
                    var b = attack.Perturb(m, x, y64);
                    Assert.True(a.equal(b).all().item<bool>(), $"{attack.Describe()} on {m.Describe()} with {dtype} labels");
                }
        }
    }

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.Float64)]
    [InlineData(ScalarType.Bool)]
    public void NonIntegerLabels_AreAClearError(ScalarType dtype)
    {
        var (model, _, _) = ThreeClassLinear();
        var x = rand(new long[] { 2, 1, 4, 4 }, generator: new Generator(5, CPU));
        var y = tensor(new long[] { 0, 1 }).to(dtype);
        var e = Assert.Throws<AdpException>(() => Losses.PerImage(model.forward(x), y, AttackLoss.CrossEntropy));
        Assert.Contains("integer", e.Message);
        foreach (var attack in AllAttacks(AttackLoss.CrossEntropy))
            Assert.Contains("integer", Assert.Throws<AdpException>(() => attack.Perturb(new ClassifierModel(model), x, y)).Message);
    }

    [Fact]
    public void Labels_OfTheWrongCountOrOutOfRange_AreAClearError()
    {
        var (model, _, _) = ThreeClassLinear();
        var x = rand(new long[] { 2, 1, 4, 4 }, generator: new Generator(5, CPU));
        var pgd = new Pgd(new ThreatModel(Epsilon: 0.1, StepSize: 0.03, Iterations: 2));
        var m = new ClassifierModel(model);
        Assert.Contains("vector of 2", Assert.Throws<AdpException>(() => pgd.Perturb(m, x, tensor(new long[] { 0 }))).Message);
        Assert.Contains("0…2", Assert.Throws<AdpException>(() => pgd.Perturb(m, x, tensor(new long[] { 0, 3 }))).Message);
        var logits = model.forward(x);
        Assert.Contains("0…2", Assert.Throws<AdpException>(() => Losses.PerImage(logits, tensor(new long[] { -1, 0 }), AttackLoss.Margin)).Message);
    }
}
