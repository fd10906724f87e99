using Adp.Models;
using Adp.Purification;
using TorchSharp;
using static TorchSharp.torch;

namespace Adp.Tests;

public class DifferentiablePurifierTests
{
    private static (Ncsnv2 Net, Tensor X, Tensor Eps) Tiny()
    {
        torch.manual_seed(5);
        var net = new Ncsnv2(new ScoreModelConfig(1, 28, 4, 1, 0.01, 3));
        net.to(ScalarType.Float64).eval();
        var g = new Generator(9, CPU);
        var x = rand(new long[] { 2, 1, 28, 28 }, generator: g).Times(0.6).Plus(0.2).to(ScalarType.Float64);
        var eps = randn(new long[] { 2, 1, 28, 28 }, generator: g).to(ScalarType.Float64);
        return (net, x, eps);
    }

    [Theory]
    [InlineData(true, false, 64, false)]
    [InlineData(false, false, 64, false)]
    [InlineData(true, true, 64, false)]
    [InlineData(true, false, 1, false)]  // one image per network call and per backward recomputation
    [InlineData(true, false, 64, true)]  // frozen weights, as attacks run it: FrozenConvolution's input gradients
    [InlineData(false, false, 64, true)]
    [InlineData(false, true, 64, true)]   // without checkpointing: the graph-carrying h(x_t) also gives the step size
    [InlineData(false, false, 1, true)]
    public void Gradient_MatchesFiniteDifferences(bool checkpointing, bool faithful, int chunk, bool frozen)
    {
        var (net, x, eps) = Tiny();
        foreach (var parameter in net.parameters()) parameter.requires_grad_(!frozen);
        // Small σ so that few pixels sit on the clip boundary (where the gradient is one-sided).
        var s = new PurifierSettings(Sigma: 0.05, Steps: 3, Faithful: faithful);
        var p = new DifferentiablePurifier(net, s) { Checkpointing = checkpointing, Chunk = chunk };
        var w = randn(x.shape, dtype: ScalarType.Float64, generator: new Generator(2, CPU));
        // Loss = ⟨w, purify(x)⟩; α is held fixed (detached), so the finite difference must also hold it fixed:
        // evaluate both sides with the step sizes of the unperturbed input, via a recorded-α purifier.
        var xr = x.clone().requires_grad_(true);
        var loss = (p.Purify(xr, eps) * w).sum();
        var grad = autograd.grad([loss], [xr])[0];

        var fixedAlpha = new FixedAlphaPurifier(net, s, x, eps);
        const double h = 1e-6;
        foreach (long i in new long[] { 100, 400, 784 + 300, 784 + 500, 784 + 615 })
        {
            var plus = x.clone(); plus.view(-1)[i].AddInPlace(h);
            var minus = x.clone(); minus.view(-1)[i].AddInPlace(-h);
            double fd = ((fixedAlpha.Run(plus) * w).sum().item<double>() - (fixedAlpha.Run(minus) * w).sum().item<double>()) / (2 * h);
            Assert.Equal(fd, grad.view(-1)[i].item<double>(), 1e-6);
        }
    }

    [Fact]
    public void FullGradientEot_BatchedCopies_EqualTheMeanOfPerCopyGradients()
    {
        var (net, x, _) = Tiny();
        torch.manual_seed(3);
        var clf = Classifier.Create(ClassifierConfig.SmallCnn());
        clf.to(ScalarType.Float64).eval();
        var y = tensor(new long[] { 3, 7 });
        var s = new PurifierSettings(Sigma: 0.1, Steps: 2);
        const int eot = 3;
        PerImageSource Source() => PerImageSource.For(4, [10, 11], 9);
        // Independent computation: copy j of image i uses row j·N + i of the repeated source; gradients averaged.
        var eps = Source().Repeat(eot).Randn([eot * 2, 1, 28, 28]).to(ScalarType.Float64);
        var expected = zeros_like(x);
        var p = new DifferentiablePurifier(net, s);
        for (int j = 0; j < eot; j++)
        {
            var xr = x.clone().requires_grad_(true);
            var l = Attacks.Losses.PerImage(clf.forward(p.Purify(xr, eps.narrow(0, 2 * j, 2))), y, Attacks.AttackLoss.CrossEntropy);
            expected = expected.Plus(autograd.grad([l.sum()], [xr])[0].Over(eot));
        }
        // The default groups rows by the score network's chunk (the default of every attack run from the command line).
        Assert.Equal(AdaptiveStepPurifier.ChunkFor(net), new Attacks.FullGradientEotModel(clf, p, eot).MaxBatch);
        foreach (int? rows in new int?[] { null, 256, 3, 1 })  // default, all copies at once, chunks that split copies, one row at a time
        {
            var model = rows is null ? new Attacks.FullGradientEotModel(clf, p, eot)
                : new Attacks.FullGradientEotModel(clf, p, eot) { MaxBatch = rows.Value };
            var (_, grad) = model.LossAndDirection(x, y, Attacks.AttackLoss.CrossEntropy, Source());
            Assert.True((grad - expected).abs().max().item<double>() < 1e-10, $"rows {rows}");
        }
        Assert.True(expected.abs().max().item<double>() > 0, "the gradient must be non-trivial");
    }

    /// <summary>Checkpointing is a memory setting only: with every step's graph kept, the full-gradient EOT loss and gradient
    /// through ADP (plain and faithful) and re-injection equal the checkpointed ones. Float64, so the only differences are the
    /// summation order of the backward passes (per chunk against whole), ~1e-15 relative; 1e-10 leaves room for the
    /// conditioning of T = 4 chained steps.</summary>
    [Theory]
    [InlineData("adp", false)]
    [InlineData("adp", true)]
    [InlineData("reinject", false)]
    public void WithoutCheckpointing_TheFullGradientEotDirectionIsTheSame(string kind, bool faithful)
    {
        var (net, x, _) = Tiny();
        foreach (var parameter in net.parameters()) parameter.requires_grad_(false);
        torch.manual_seed(3);
        var clf = Classifier.Create(ClassifierConfig.SmallCnn());
        clf.to(ScalarType.Float64).eval();
        var y = tensor(new long[] { 3, 7 });
        var s = new PurifierSettings(Sigma: 0.1, Steps: 4, Faithful: faithful);
        var variant = kind == "reinject"
            ? new PurifierVariant { Kind = PurifierKind.Reinject, ReinjectSigmas = [0.1, 0.05] } : PurifierVariant.Adp;
        PerImageSource Source() => PerImageSource.For(4, [10, 11], 9);
        (Tensor Loss, Tensor Direction) Run(bool checkpointing, int rows) =>
            new Attacks.FullGradientEotModel(clf, variant.CreateDifferentiable(net, s, checkpointing), 3) { MaxBatch = rows }
                .LossAndDirection(x, y, Attacks.AttackLoss.CrossEntropy, Source());
        // Compared at the same grouping of rows: the faithful form couples the rows purified together (every row gets the inverse
        // range map while any row steps).
        foreach (int rows in new[] { 6, 4 })
        {
            var (loss, direction) = Run(true, rows);
            Assert.True(direction.abs().max().item<double>() > 0, "the gradient must be non-trivial");
            var (l, d) = Run(false, rows);
            Assert.True((l - loss).abs().max().item<double>() < 1e-10 * loss.abs().max().item<double>(), $"loss, rows {rows}");
            Assert.True((d - direction).abs().max().item<double>() < 1e-10 * direction.abs().max().item<double>(),
                $"direction, rows {rows}");
        }
    }

    /// <summary>Replays the purification with the step sizes of a reference input (what a detached α means).</summary>
    private sealed class FixedAlphaPurifier
    {
        private readonly nn.Module<Tensor, Tensor> _net;
        private readonly PurifierSettings _s;
        private readonly Tensor _eps;
        private readonly Tensor _steps;

        public FixedAlphaPurifier(nn.Module<Tensor, Tensor> net, PurifierSettings s, Tensor x, Tensor eps)
        {
            (_net, _s, _eps) = (net, s, eps);
            using var r = new AdaptiveStepPurifier(net, s).Purify(x, eps);
            _steps = r.StepSizes.clone();
        }

        public Tensor Run(Tensor x)
        {
            using var _ = no_grad();
            var cur = x.Plus(_eps.Times(_s.Sigma)).ClampedToUnit();
            if (_s.Faithful) cur = AdaptiveStepPurifier.RangeMap(cur);
            for (int t = 0; t < _s.Steps; t++)
            {
                // Once no image steps the run has ended (the research loop breaks; no further inverse range map).
                if (_steps[t].abs().max().item<double>() == 0) break;
                cur = AdaptiveStepPurifier.Advance(cur, _steps[t], _net.forward(cur), _s.Faithful);
            }
            return cur;
        }
    }

    [Fact]
    public void ForwardValue_EqualsTheNoGradPurifier()
    {
        var (net, x, eps) = Tiny();
        var s = new PurifierSettings(Steps: 4);
        using var r = new AdaptiveStepPurifier(net, s).Purify(x, eps);
        var d = new DifferentiablePurifier(net, s).Purify(x.clone().requires_grad_(true), eps);
        Assert.True((d.detach() - r.Images).abs().max().item<double>() < 1e-12);
    }

    /// <summary>Re-injection and Tweedie with autograd: the forward value is the no-grad variant's given the same noise rows
    /// (each stage draws its own, in order), and the gradient matches central differences of the variant with every stage's
    /// step sizes held at those of the unperturbed input (what detached α means; Tweedie has none).</summary>
    [Theory]
    [InlineData("reinject")]
    [InlineData("tweedie")]
    public void Variants_ForwardEqualsTheNoGradVariant_AndGradientMatchesFiniteDifferences(string kind)
    {
        var (net, x, _) = Tiny();
        var s = new PurifierSettings(Sigma: 0.05, Steps: 2);
        double[] sigmas = [0.05, 0.03];
        var variant = kind == "reinject" ? new PurifierVariant { Kind = PurifierKind.Reinject, ReinjectSigmas = sigmas }
            : new PurifierVariant { Kind = PurifierKind.Tweedie };
        PerImageSource Source() => PerImageSource.For(7, [3, 4], 2);
        var d = variant.CreateDifferentiable(net, s);
        var xr = x.clone().requires_grad_(true);
        var purified = d.Purify(xr, Source());
        using (var r = variant.Create(net, s).Purify(x, Source()))
            Assert.True((purified.detach() - r.Images).abs().max().item<double>() < 1e-12);
        // The noise of each stage, drawn as the purifiers draw it: stage k takes the k-th draw of every row.
        var draws = Source();
        var eps = (kind == "reinject" ? sigmas : [s.Sigma]).Select(_ => draws.Randn(x.shape).to(ScalarType.Float64)).ToArray();
        Func<Tensor, Tensor> run;
        if (kind == "reinject")
        {
            // Stage k's step sizes are those it takes on the unperturbed input's stage k − 1 output.
            var first = new FixedAlphaPurifier(net, s with { Sigma = sigmas[0] }, x, eps[0]);
            var second = new FixedAlphaPurifier(net, s with { Sigma = sigmas[1] }, first.Run(x), eps[1]);
            run = v => second.Run(first.Run(v));
        }
        else
        {
            run = v =>
            {
                using var _ = no_grad();
                var x0 = v.Plus(eps[0].Times(s.Sigma)).ClampedToUnit();
                return x0.Plus(net.forward(x0).Times(s.Sigma)).ClampedToUnit();
            };
        }
        var w = randn(x.shape, dtype: ScalarType.Float64, generator: new Generator(2, CPU));
        var grad = autograd.grad([(purified * w).sum()], [xr])[0];
        const double h = 1e-6;
        foreach (long i in new long[] { 100, 400, 784 + 300, 784 + 500, 784 + 615 })
        {
            var plus = x.clone(); plus.view(-1)[i].AddInPlace(h);
            var minus = x.clone(); minus.view(-1)[i].AddInPlace(-h);
            double fd = ((run(plus) * w).sum().item<double>() - (run(minus) * w).sum().item<double>()) / (2 * h);
            Assert.Equal(fd, grad.view(-1)[i].item<double>(), 1e-6);
        }
        Assert.True(grad.abs().max().item<double>() > 0.1, "the gradient must be non-trivial");
    }

    /// <summary>The variants without a differentiable form are refused with one line naming the purifier.</summary>
    [Theory]
    [InlineData(PurifierKind.Gated)]
    [InlineData(PurifierKind.Langevin)]
    public void Variants_WithoutADifferentiableForm_AreRefused(PurifierKind kind)
    {
        var (net, _, _) = Tiny();
        var e = Assert.Throws<AdpException>(() => new PurifierVariant { Kind = kind }.CreateDifferentiable(net, new PurifierSettings()));
        Assert.StartsWith($"--purifier {kind.ToString().ToLowerInvariant()}: no differentiable form", e.Message);
    }

    private sealed class ScoreFn(Func<Tensor, Tensor> f) : nn.Module<Tensor, Tensor>("fn")
    {
        public override Tensor forward(Tensor x) => f(x);
    }

    /// <summary>ADP with autograd where one image's score is not finite (with a path back to the image: h = 0.1·(0.5 − x)·∞ for
    /// the bright image): that image stops at its start with a finite gradient, in both memory modes; without checkpointing the
    /// graph of the first network call holds that row, and a backward pass through it gave NaN (0·∞). The dark image steps.</summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Adp_AnImageWithANonFiniteScore_StopsWithAFiniteGradient(bool checkpointing)
    {
        var x = cat([HeldScalars.Full([1, 1, 4, 4], 0.9f), HeldScalars.Full([1, 1, 4, 4], 0.1f)]).to(ScalarType.Float64);
        using TorchSharp.Scalar half = 0.5;
        var net = new ScoreFn(v =>
        {
            var m = v.flatten(1).mean([1]).view(-1, 1, 1, 1);
            // 1/0 on the bright row, 1/1 on the dark one
            return v.SubtractedFrom(0.5f).Times(0.1) * (m - m.detach()).Plus(m.le(half).to(m.dtype)).reciprocal();
        });
        var s = new PurifierSettings(Sigma: 0, Steps: 3);
        var xr = x.clone().requires_grad_(true);
        var y = new DifferentiablePurifier(net, s) { Checkpointing = checkpointing }.Purify(xr, zeros_like(x));
        Assert.True((y[0].detach() - x[0]).abs().max().item<double>() == 0, "the bright image must keep its start");
        Assert.True((y[1].detach() - x[1]).abs().max().item<double>() > 1e-3, "the dark image must step");
        var grad = autograd.grad([y.sum()], [xr])[0];
        Assert.True(grad.isfinite().all().item<bool>(), "gradient not finite");
    }

    /// <summary>Counts the calls of the score network in the forward and in the backward pass: without checkpointing each step
    /// calls it twice (h(x_t) with its graph, the probe) and the backward pass never; with checkpointing, twice without graph
    /// and once more per step in the backward pass. Also checks that CreateDifferentiable passes the setting on.</summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void NetworkCalls_PerStep_ByMemoryMode(bool checkpointing)
    {
        var (net, x, eps) = Tiny();
        foreach (var parameter in net.parameters()) parameter.requires_grad_(false);
        int calls = 0;
        var counted = new ScoreFn(v => { calls++; return net.forward(v); });
        // τ = 0 and tiny α_min: no image stops within T = 3, so every step runs both images.
        var s = new PurifierSettings(Sigma: 0.05, Steps: 3, Tau: 0, AlphaMin: 1e-12);
        var p = Assert.IsType<DifferentiablePurifier>(PurifierVariant.Adp.CreateDifferentiable(counted, s, checkpointing));
        Assert.Equal(checkpointing, p.Checkpointing);
        var xr = x.clone().requires_grad_(true);
        var y = p.Purify(xr, eps);
        Assert.Equal(2 * s.Steps, calls);
        calls = 0;
        autograd.grad([y.sum()], [xr]);
        Assert.Equal(checkpointing ? s.Steps : 0, calls);
    }

    /// <summary>Tweedie with autograd where one image's score is not finite: that image keeps x₀ (as the no-grad purifier
    /// does) and gets a finite gradient (the identity through x₀'s clip), rather than the NaN a backward pass through its
    /// infinite score would give (0·∞); the other image steps as usual.</summary>
    [Fact]
    public void Tweedie_AnImageWithANonFiniteScore_KeepsX0_WithAFiniteGradient()
    {
        var (_, x, _) = Tiny();
        PerImageSource Source() => PerImageSource.For(1, [0, 1], 3);
        var x0 = x.Plus(Source().Randn(x.shape).to(ScalarType.Float64).Times(0.1)).ClampedToUnit();
        // h = 0.1·(0.5 − x), times 1/(m − m) = ∞ (derivative −∞) for image 0 only, told apart by its mean pixel (a per-image rule, as
        // a network's: the purifier may call it on any subset of the batch).
        double m0 = x0[0].mean().item<double>(), m1 = x0[1].mean().item<double>(), cut = (m0 + m1) / 2;
        Assert.True(Math.Abs(m0 - m1) > 1e-3, $"means {m0} {m1}");
        using TorchSharp.Scalar cutAt = cut;
        var net = new ScoreFn(v =>
        {
            var m = v.flatten(1).mean([1]).view(-1, 1, 1, 1);
            var bad = m0 > cut ? m.gt(cutAt) : m.lt(cutAt);
            // 1/0 on bad rows, 1/1 elsewhere
            return v.SubtractedFrom(0.5f).Times(0.1) * (m - m.detach()).Plus(bad.logical_not().to(m.dtype)).reciprocal();
        });
        var xr = x.clone().requires_grad_(true);
        var y = new DifferentiableTweedie(net, 0.1).Purify(xr, Source());
        using (var r = new TweediePurifier(net, 0.1).Purify(x, Source()))
            Assert.True((y.detach() - r.Images).abs().max().item<double>() < 1e-12, $"forward {(y.detach() - r.Images).abs().max().item<double>()}");
        Assert.True((y[0].detach() - x0[0]).abs().max().item<double>() < 1e-12);   // image 0 not stepped
        Assert.True((y[1].detach() - x0[1]).abs().max().item<double>() > 1e-3, "stepped");    // image 1 stepped
        var grad = autograd.grad([y.sum()], [xr])[0];
        Assert.True(grad.isfinite().all().item<bool>(), "grad");
    }
}
