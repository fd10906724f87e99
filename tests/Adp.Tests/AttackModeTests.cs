using Adp.Attacks;
using Adp.Models;
using Adp.Purification;
using TorchSharp;
using static TorchSharp.torch;

namespace Adp.Tests;

/// <summary>Case 8: attacks leave a model's mode and buffers exactly as they found them.</summary>
public partial class AttackTests
{
    /// <summary>Conv → BatchNorm2d → ReLU → flatten → (BatchNorm1d → Dropout → Linear) on 1×4×4 images, 3 classes.</summary>
    private static nn.Module<Tensor, Tensor> BatchNormClassifier()
    {
        torch.manual_seed(7);
        var head = nn.Sequential(("bn1d", nn.BatchNorm1d(64)), ("drop", nn.Dropout(0.5)), ("fc", nn.Linear(64, 3)));
        return nn.Sequential(("conv", nn.Conv2d(1, 4, 3, padding: 1)), ("bn", nn.BatchNorm2d(4)), ("relu", nn.ReLU()),
            ("flat", nn.Flatten()), ("head", head));
    }

    /// <summary>A small score network with BatchNorm (N×1×4×4 → N×1×4×4).</summary>
    private static nn.Module<Tensor, Tensor> BatchNormScore()
    {
        torch.manual_seed(8);
        return nn.Sequential(("c1", nn.Conv2d(1, 2, 3, padding: 1)), ("bn", nn.BatchNorm2d(2)), ("c2", nn.Conv2d(2, 1, 3, padding: 1)));
    }

    /// <summary>Every module's training flag in pre-order, and a copy of every buffer.</summary>
    private static (List<bool> Flags, List<(string Name, Tensor Value)> Buffers) Snapshot(nn.Module m)
    {
        var flags = new List<bool>();
        void Walk(nn.Module x)
        {
            flags.Add(x.training);
            foreach (var (_, c) in x.named_children()) Walk(c);
        }
        Walk(m);
        return (flags, m.named_buffers().Select(b => (b.name, b.buffer.clone())).ToList());
    }

    private static void AssertUnchanged(nn.Module m, (List<bool> Flags, List<(string Name, Tensor Value)> Buffers) before, string what)
    {
        var after = Snapshot(m);
        Assert.True(before.Flags.SequenceEqual(after.Flags), $"{what}: training flags changed");
        Assert.Equal(before.Buffers.Count, after.Buffers.Count);
        for (int i = 0; i < before.Buffers.Count; i++)
            Assert.True(before.Buffers[i].Value.bytes.SequenceEqual(after.Buffers[i].Value.bytes),
                $"{what}: buffer {before.Buffers[i].Name} changed");
    }

    [Fact]
    public void Attacks_LeaveModesAndBuffersOfBatchNormModelsAsFound()
    {
        var clf = BatchNormClassifier();
        var score = BatchNormScore();
        // Mixed flags: training mode, except one BatchNorm and the score network's second conv.
        clf.train();
        ((nn.Module)clf.named_modules().First(m => m.name == "head.bn1d").module).eval();
        score.train();
        ((nn.Module)score.named_children().First(c => c.name == "c2").module).eval();
        var clfBefore = Snapshot(clf);
        var scoreBefore = Snapshot(score);
        Assert.Contains(true, clfBefore.Flags);
        Assert.Contains(false, clfBefore.Flags);

        var x = rand(new long[] { 4, 1, 4, 4 }, generator: new Generator(3, CPU));
        var y = tensor(new long[] { 0, 1, 2, 0 });
        var s = new PurifierSettings(Sigma: 0.1, Steps: 2, Tau: 0);
        var models = new IAttackModel[]
        {
            new ClassifierModel(clf),
            new BpdaEotModel(clf, new AdaptiveStepPurifier(score, s), 2, BpdaAggregation.SignVote),
            new BpdaEotModel(clf, new AdaptiveStepPurifier(score, s), 2, BpdaAggregation.Paper, score),
            new BpdaEotModel(clf, new AdaptiveStepPurifier(score, s), 2, BpdaAggregation.ScoreAware, score),
            new FullGradientEotModel(clf, new DifferentiablePurifier(score, s), 2),
        };
        var attacks = new IAttack[]
        {
            new Fgsm(new ThreatModel(Epsilon: 0.1)),
            new Pgd(new ThreatModel(Epsilon: 0.1, StepSize: 0.03, Iterations: 2)),
            new Apgd(new ThreatModel(Epsilon: 0.1, Iterations: 3, Loss: AttackLoss.Dlr)),
        };
        foreach (var m in models)
            foreach (var a in attacks)
            {
                a.Perturb(m, x, y);
                AssertUnchanged(clf, clfBefore, $"{a.Describe()} on {m.Describe()}: classifier");
                AssertUnchanged(score, scoreBefore, $"{a.Describe()} on {m.Describe()}: score network");
            }

        // The classifier ran in evaluation mode: the same attack on the model switched to eval gives the same images
        // (in training mode dropout and batch statistics would have changed them).
        var pgd = new Pgd(new ThreatModel(Epsilon: 0.1, StepSize: 0.03, Iterations: 2));
        var fromTrain = pgd.Perturb(new ClassifierModel(clf), x, y);
        clf.eval();
        var fromEval = pgd.Perturb(new ClassifierModel(clf), x, y);
        Assert.True(fromTrain.equal(fromEval).all().item<bool>());

        // The defended classifier leaves both networks as found too.
        clf.train();
        clfBefore = Snapshot(clf);
        using (new DefendedClassifier(clf, new AdaptiveStepPurifier(score, s), 2).Classify(x, new Generator(1, CPU))) { }
        AssertUnchanged(clf, clfBefore, "defended classifier: classifier");
        AssertUnchanged(score, scoreBefore, "defended classifier: score network");
    }

    /// <summary>Wraps a classifier and throws on its n-th forward pass (after running the wrapped model).</summary>
    private sealed class ThrowOnCall : nn.Module<Tensor, Tensor>
    {
        private readonly nn.Module<Tensor, Tensor> inner;
        private readonly int throwAt;
        private int calls;

        public ThrowOnCall(nn.Module<Tensor, Tensor> inner, int throwAt) : base("throw-on-call")
        {
            this.inner = inner;
            this.throwAt = throwAt;
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            var y = inner.forward(x);
            if (++calls == throwAt) throw new InvalidOperationException("forward failed");
            return y;
        }
    }

    [Fact]
    public void Attacks_RestoreModesEvenWhenTheyThrow()
    {
        var clf = new ThrowOnCall(BatchNormClassifier(), throwAt: 3);
        clf.train();
        var before = Snapshot(clf);
        var x = rand(new long[] { 2, 1, 4, 4 }, generator: new Generator(3, CPU));
        var y = tensor(new long[] { 0, 1 });
        Assert.Throws<InvalidOperationException>(() =>
            new Pgd(new ThreatModel(Epsilon: 0.1, StepSize: 0.03, Iterations: 5)).Perturb(new ClassifierModel(clf), x, y));
        AssertUnchanged(clf, before, "PGD that threw");
    }

    [Fact]
    public void Pgd_OnTheCifarResNetInTrainingMode_KeepsItsBatchNormStatistics()
    {
        // Case 8: PGD on models/cifar10-resnet-small.ckpt after .train() moved BatchNorm running statistics by up to 0.3.
        var (net, _) = ClassifierFile.Load(Path.Combine(RepoRoot(), "models", "cifar10-resnet-small.ckpt"));
        net.train();
        var before = Snapshot(net);
        var x = rand(new long[] { 2, 3, 32, 32 }, generator: new Generator(4, CPU));
        var y = tensor(new long[] { 3, 5 }).to(ScalarType.Int32);  // case 7's dtype as well
        new Pgd(new ThreatModel(Epsilon: 8 / 255.0, StepSize: 2 / 255.0, Iterations: 2)).Perturb(new ClassifierModel(net), x, y);
        AssertUnchanged(net, before, "PGD on the CIFAR-10 ResNet");
        Assert.True(net.training);
    }

    /// <summary>The repository root (the folder with Adp.slnx), found from the test binaries upward.</summary>
    internal static string RepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Adp.slnx"))) return d.FullName;
        throw new InvalidOperationException($"no Adp.slnx above {AppContext.BaseDirectory}");
    }
}
