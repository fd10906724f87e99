using Adp.Attacks;
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
                Images = (x + c).clamp(0, 1), StepSizes = zeros(1, x.shape[0]),
                StepsTaken = zeros(new long[] { x.shape[0] }, ScalarType.Int64),
            };
        }
    }

    /// <summary>A score network given by a function.</summary>
    private sealed class ScoreFn(Func<Tensor, Tensor> f) : nn.Module<Tensor, Tensor>("fn")
    {
        public override Tensor forward(Tensor x) => f(x);
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
            return (full(new long[] { x.shape[0] }, loss(call)), full(x.shape, direction(call)));
        }
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
        var x = full(new long[] { 1, 1, 1, 1 }, 0.5f);
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
                new FullGradientEotModel(model, new DifferentiablePurifier(new ScoreFn(v => 0.1f * (0.5f - v)),
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
