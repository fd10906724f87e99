using Adp.Attacks;
using Adp.Models;
using Adp.Purification;
using TorchSharp;
using static TorchSharp.torch;

namespace Adp.Tests;

public partial class AttackTests
{
    /// <summary>A linear classifier on 1×4×4 images: logits = W·vec(x) + b.</summary>
    private sealed class Linear4(Tensor w, Tensor b) : nn.Module<Tensor, Tensor>("linear4")
    {
        public override Tensor forward(Tensor x) => x.flatten(1).matmul(w.t()).Plus(b);
    }

    private static (Linear4 Model, Tensor W) TwoClassLinear()
    {
        var g = new Generator(3, CPU);
        var w = randn(new long[] { 2, 16 }, generator: g);
        return (new Linear4(w, zeros(2)), w);
    }

    [Theory]
    [InlineData(Norm.Linf)]
    [InlineData(Norm.L2)]
    public void Pgd_OnLinearModel_ReachesTheAnalyticWorstCase(Norm norm)
    {
        // Margin loss m = z₁ − z₀ = (w₁ − w₀)·x is linear, so its maximum over the ε-ball is
        // m(x) + ε‖w₁ − w₀‖₁ (ℓ∞) or m(x) + ε‖w₁ − w₀‖₂ (ℓ2); the box [0,1] does not bind at x = 0.5, small ε.
        var (model, w) = TwoClassLinear();
        var x = HeldScalars.Full([1, 1, 4, 4], 0.5f);
        var y = tensor(new long[] { 0 });
        double eps = norm == Norm.Linf ? 0.05 : 0.2;
        var attack = new Pgd(new ThreatModel(norm, eps, eps / 4, 40, RandomStart: true, Loss: AttackLoss.Margin, Seed: 1));
        var adv = attack.Perturb(new ClassifierModel(model), x, y);
        var d = w[1] - w[0];
        double m0 = (d * x.flatten()).sum().item<float>();
        double expected = m0 + eps * (norm == Norm.Linf ? d.abs().sum() : d.norm()).item<float>();
        double reached = (d * adv.flatten()).sum().item<float>();
        Assert.Equal(expected, reached, 1e-4);
    }

    [Fact]
    public void ZeroEpsilon_ChangesNothing()
    {
        var (model, _) = TwoClassLinear();
        var x = rand(new long[] { 3, 1, 4, 4 }, generator: new Generator(1, CPU));
        var y = tensor(new long[] { 0, 1, 0 });
        foreach (IAttack a in new IAttack[]
                 {
                     new Fgsm(new ThreatModel(Epsilon: 0)), new Pgd(new ThreatModel(Epsilon: 0, StepSize: 0.1, Iterations: 5)),
                     new Pgd(new ThreatModel(Norm.L2, 0, 0.1, 5)), new Apgd(new ThreatModel(Epsilon: 0, Iterations: 10)),
                 })
            Assert.True(a.Perturb(new ClassifierModel(model), x, y).equal(x).all().item<bool>(), a.Describe());
    }

    [Fact]
    public void UnboundedAttack_TakesAnUndefendedModelToZeroAccuracy()
    {
        var g = new Generator(4, CPU);
        var model = new Linear4(randn(new long[] { 10, 16 }, generator: g), randn(10, generator: g));
        var x = rand(new long[] { 64, 1, 4, 4 }, generator: g);
        var y = model.forward(x).argmax(1);  // the model is "right" on every clean image
        var adv = new Pgd(new ThreatModel(Epsilon: 1.0, StepSize: 0.1, Iterations: 50, Loss: AttackLoss.Margin)).Perturb(new ClassifierModel(model), x, y);
        double acc = model.forward(adv).argmax(1).eq(y).to(ScalarType.Float32).mean().item<float>();
        Assert.True(acc <= 0.02, $"accuracy {acc} after an unbounded attack");
    }

    [Fact]
    public void FixedSeed_GivesIdenticalAdversarialImages()
    {
        var (model, _) = TwoClassLinear();
        var x = rand(new long[] { 4, 1, 4, 4 }, generator: new Generator(2, CPU));
        var y = tensor(new long[] { 0, 1, 1, 0 });
        var t = new ThreatModel(Epsilon: 0.1, StepSize: 0.01, Iterations: 5, Seed: 9);
        var a = new Pgd(t).Perturb(new ClassifierModel(model), x, y);
        var b = new Pgd(t).Perturb(new ClassifierModel(model), x, y);
        var c = new Pgd(t with { Seed = 10 }).Perturb(new ClassifierModel(model), x, y);
        Assert.True(a.bytes.SequenceEqual(b.bytes));
        Assert.False(a.bytes.SequenceEqual(c.bytes));
    }

    [Fact]
    public void EveryAttack_StaysInTheBallAndTheBox()
    {
        torch.manual_seed(1);
        var clf = Classifier.Create(ClassifierConfig.SmallCnn(1, 28));
        clf.eval();
        var score = new Ncsnv2(new ScoreModelConfig(1, 28, 4, 1, 0.01, 3));
        score.eval();
        var s = new PurifierSettings(Steps: 2);
        var x = rand(new long[] { 3, 1, 28, 28 }, generator: new Generator(5, CPU));
        var y = tensor(new long[] { 1, 2, 3 });
        var models = new IAttackModel[]
        {
            new ClassifierModel(clf),
            new BpdaEotModel(clf, new AdaptiveStepPurifier(score, s), 2, BpdaAggregation.SignVote),
            new BpdaEotModel(clf, new AdaptiveStepPurifier(score, s), 2, BpdaAggregation.Mean),
            new BpdaEotModel(clf, new AdaptiveStepPurifier(score, s), 2, BpdaAggregation.ScoreAware, score),
            new FullGradientEotModel(clf, new DifferentiablePurifier(score, s), 2),
        };
        foreach (var model in models)
            foreach (var (attack, norm, eps) in new (IAttack, Norm, double)[]
                     {
                         (new Fgsm(new ThreatModel(Epsilon: 0.3)), Norm.Linf, 0.3),
                         (new Pgd(new ThreatModel(Epsilon: 0.1, StepSize: 0.05, Iterations: 3)), Norm.Linf, 0.1),
                         (new Pgd(new ThreatModel(Norm.L2, 1.5, 0.5, 3, Loss: AttackLoss.Margin)), Norm.L2, 1.5),
                         (new Apgd(new ThreatModel(Epsilon: 0.1, Iterations: 5, Loss: AttackLoss.Dlr)), Norm.Linf, 0.1),
                     })
            {
                // The research code's score-aware rule gives ℓ∞ steps and refuses ℓ2 (tested elsewhere).
                if (model is BpdaEotModel { Aggregation: BpdaAggregation.ScoreAware } && norm == Norm.L2) continue;
                var adv = attack.Perturb(model, x, y);
                Assert.True(adv.min().item<float>() >= 0 && adv.max().item<float>() <= 1, $"{attack.Describe()} on {model.Describe()} left [0,1]");
                var d = (adv - x).flatten(1);
                double size = (norm == Norm.Linf ? d.abs().max(1).values : d.norm(1)).max().item<float>();
                Assert.True(size <= eps * (1 + 1e-5) + 1e-6, $"{attack.Describe()} on {model.Describe()}: perturbation {size} > ε {eps}");
                Assert.True(size > 0, $"{attack.Describe()} on {model.Describe()} did not move");
            }
    }

    [Fact]
    public void Apgd_IncreasesTheLossOnALinearModel()
    {
        var (model, w) = TwoClassLinear();
        var x = HeldScalars.Full([2, 1, 4, 4], 0.5f);
        var y = tensor(new long[] { 0, 1 });
        var adv = new Apgd(new ThreatModel(Epsilon: 0.05, Iterations: 20, RandomStart: false, Loss: AttackLoss.CrossEntropy)).Perturb(new ClassifierModel(model), x, y);
        var before = Losses.PerImage(model.forward(x), y, AttackLoss.CrossEntropy);
        var after = Losses.PerImage(model.forward(adv), y, AttackLoss.CrossEntropy);
        Assert.True(after.gt(before).all().item<bool>());
        // The ℓ∞ optimum of a linear loss is a corner of the ball: every pixel moved by ε.
        Assert.True((adv - x).abs().Minus(0.05).abs().max().item<float>() < 1e-5);
    }

    /// <summary>A purifier that returns its input: every EOT sample then sees the same gradient.</summary>
    private sealed class IdentityPurifier : IPurifier
    {
        public string Describe() => "identity";
        public PurificationResult Purify(Tensor x, RandomSource random, bool keepTrajectory = false) => new()
        {
            Images = x.clone(), StepSizes = zeros(1, x.shape[0]), StepsTaken = zeros(new long[] { x.shape[0] }, ScalarType.Int64),
        };
    }

    [Fact]
    public void Bpda_WithIdentityPurifier_AggregatesTheClassifierGradient()
    {
        var (model, _) = TwoClassLinear();
        var x = rand(new long[] { 3, 1, 4, 4 }, generator: new Generator(6, CPU));
        var y = tensor(new long[] { 0, 1, 1 });
        using var g = new Generator(1, CPU);
        var (l0, grad) = new ClassifierModel(model).LossAndDirection(x, y, AttackLoss.CrossEntropy, g);
        var (lv, vote) = new BpdaEotModel(model, new IdentityPurifier(), 3, BpdaAggregation.SignVote).LossAndDirection(x, y, AttackLoss.CrossEntropy, g);
        var (lm, mean) = new BpdaEotModel(model, new IdentityPurifier(), 3, BpdaAggregation.Mean).LossAndDirection(x, y, AttackLoss.CrossEntropy, g);
        Assert.True((vote - grad.sign().Times(3)).abs().max().item<float>() == 0);     // Σ_j sign(∇_j) over 3 equal samples
        Assert.True((mean - grad).abs().max().item<float>() < 1e-6);             // mean of equal gradients
        Assert.True((lv - l0).abs().max().item<float>() < 1e-6 && (lm - l0).abs().max().item<float>() < 1e-6);
    }

    [Fact]
    public void DlrAndMarginLosses_OnKnownLogits()
    {
        var z = tensor(new float[] { 3, 1, 2, 0 }).view(1, 4);
        var y = tensor(new long[] { 1 });
        Assert.Equal(2f, Losses.PerImage(z, y, AttackLoss.Margin).item<float>(), 5);             // 3 − 1
        Assert.Equal(-(1f - 3f) / (3f - 1f), Losses.PerImage(z, y, AttackLoss.Dlr).item<float>(), 5);  // sorted 3,2,1,0
    }
}
