using Adp.Data;
using Adp.IO;
using Adp.Models;
using Adp.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Adp.Tests;

[Collection(GlobalRngCollection.Name)]
public class ScoreTrainingTests
{
    [ReferenceFact]
    public void DsmLoss_MatchesPyTorch()
    {
        using var f = SafeTensors.Load(TestEnvironment.ReferenceFile("ncsnv2_mnist_ngf16_a.safetensors"));
        using var net = Ncsnv2ParityTests.LoadReference(f, 1, 28);
        using var _ = no_grad();
        var loss = DsmLoss.Compute(net, f.Get("x"), f.Get("dsm_sigmas"), f.Get("dsm_levels"), f.Get("dsm_noise"));
        Ncsnv2ParityTests.AssertClose(f.Get("dsm_loss").reshape(1), loss.reshape(1), 1e-4, 1e-4, "dsm_loss");
    }

    [Fact]
    public void DsmLoss_IsHalfSquaredNormOfHPlusZ()
    {
        // A "network" that returns −x: the loss is ½‖−(x+σz) + z‖² per image, computed independently here.
        var minusX = new Negate();
        var x = rand(3, 1, 28, 28);
        var z = randn(3, 1, 28, 28);
        var sigmas = tensor(new[] { 0.5f, 0.1f });
        var levels = tensor(new long[] { 0, 1, 0 });
        var loss = DsmLoss.Compute(minusX, x, sigmas, levels, z).item<float>();
        double expected = 0;
        for (int i = 0; i < 3; i++)
        {
            float s = i == 1 ? 0.1f : 0.5f;
            expected += 0.5 * (z[i] - x[i].Plus(z[i].Times(s))).Squared().sum().item<float>();   // −(x + sz) + z
        }
        Assert.Equal(expected / 3, loss, 3);
    }

    private sealed class Negate() : nn.Module<Tensor, Tensor>("negate")
    {
        public override Tensor forward(Tensor x) => -x;
    }

    internal static ImageDataset SyntheticDataset(int n = 64, int seed = 1)
    {
        var g = new Generator((ulong)seed, CPU);
        var pixels = randint(0, 256, [n, 1, 28, 28], dtype: ScalarType.Int64, generator: g).to(ScalarType.Byte);
        var labels = randint(0, 10, [n], dtype: ScalarType.Int64, generator: g);
        return new ImageDataset(DatasetRegistry.FashionMnist, Split.Train, pixels, labels);
    }

    private static ScoreTrainingOptions Tiny(long iterations) => new()
    {
        Dataset = "fashion-mnist",
        Model = new ScoreModelConfig(1, 28, 4, 1.0, 0.01, 5),
        Iterations = iterations,
        BatchSize = 8,
        LearningRate = 1e-3,
        Seed = 7,
        CheckpointEvery = 0,
    };

    [Fact]
    public void ResumedRun_IsIdenticalToUninterruptedRun()
    {
        var dir = Directory.CreateTempSubdirectory("adp-resume-").FullName;
        using var data = SyntheticDataset();
        var straight = Path.Combine(dir, "straight.ckpt");
        var resumed = Path.Combine(dir, "resumed.ckpt");
        new ScoreTrainer(Tiny(40), data, straight).Run(resume: false);
        Assert.Equal(20, new ScoreTrainer(Tiny(20), data, resumed).Run(resume: false));
        Assert.Equal(40, new ScoreTrainer(Tiny(40), data, resumed).Run(resume: true));

        using var a = SafeTensors.Load(straight);
        using var b = SafeTensors.Load(resumed);
        Assert.Equal("40", b.Metadata["iteration"]);
        int compared = 0;
        foreach (var (name, t) in a.Tensors)
        {
            if (name == Checkpoint.OptimizerTensor) continue;
            Assert.True(t.bytes.SequenceEqual(b.Get(name).bytes), $"{name} differs between resumed and uninterrupted runs");
            compared++;
        }
        Assert.True(compared > 100);
        // Training moved the raw weights away from their EMA, so the comparison above was not vacuous.
        Assert.False(a.Get("model.begin_conv.weight").bytes.SequenceEqual(a.Get("ema.begin_conv.weight").bytes));
    }

    [Fact]
    public void CancelledRun_WritesCheckpointAtTheIterationReached()
    {
        var dir = Directory.CreateTempSubdirectory("adp-cancel-").FullName;
        using var data = SyntheticDataset();
        var path = Path.Combine(dir, "c.ckpt");
        using var cts = new CancellationTokenSource();
        long reached = new ScoreTrainer(Tiny(1000), data, path).Run(false, p => { if (p.Iteration == 3) cts.Cancel(); }, cts.Token);
        Assert.Equal(3, reached);
        var (net, info) = ScoreModelFile.Load(path);
        Assert.Equal(3, info.Iteration);
        net.Dispose();
    }

    [Fact]
    public void KeepEvery_WritesSnapshots_ThatTheSnapshotCurveMeasures()
    {
        var dir = Directory.CreateTempSubdirectory("adp-keep-").FullName;
        using var data = SyntheticDataset();
        var ckpt = Path.Combine(dir, "s.ckpt");
        new ScoreTrainer(Tiny(20) with { KeepEvery = 10 }, data, ckpt).Run(resume: false);
        var snaps = new[] { ScoreTrainer.SnapshotPath(ckpt, 10), ScoreTrainer.SnapshotPath(ckpt, 20) };
        Assert.All(snaps, f => Assert.True(File.Exists(f), f));
        using (var f = SafeTensors.Load(snaps[0]))
        {
            Assert.Equal("10", f.Metadata["iteration"]);
            Assert.DoesNotContain(Checkpoint.OptimizerTensor, f.Tensors.Keys);   // snapshots carry no optimizer state
        }

        torch.manual_seed(1);
        var clf = Classifier.Create(ClassifierConfig.SmallCnn());
        clf.eval();
        using var eval = data.Take(6);
        var transfer = new Evaluation.AttackSpec { Kind = Evaluation.AttackKind.Pgd, Target = Evaluation.AttackTarget.Bare, Epsilon = 0.1, Iterations = 2 };
        var curve = new Evaluation.SnapshotCurve(clf, eval, new Purification.PurifierSettings(Steps: 1), 1, transfer, 0, CPU);
        foreach (var f in snaps) curve.Measure(f, WeightsChoice.Model, [0.25], batch: 4);
        Assert.Equal(new long[] { 10, 20 }, curve.Points.Select(p => p.Iteration));
        // The denoising gain is the one `adp eval denoise` reports for the same snapshot, images and seed.
        var (net, _) = ScoreModelFile.Load(snaps[1], WeightsChoice.Model);
        Assert.Equal(Evaluation.DenoiseEvaluation.Run(net, eval, 0.25, 4, 0, CPU).Gain, curve.Points[1].DenoiseGain[0.25], 9);
        var adv = curve.Adversarial();
        Assert.True((adv - eval.Images(0, 6)).abs().max().item<float>() <= 0.1f + 1e-6f);
        curve.Write(Path.Combine(dir, "curve"), "t");
        Assert.Equal(3, File.ReadAllLines(Path.Combine(dir, "curve", "curve.csv")).Length);
        Assert.True(File.Exists(Path.Combine(dir, "curve", "curve-accuracy.png")));

        // S = 0: the denoising gain alone (same value), no accuracy columns, no accuracy plot.
        var gainOnly = new Evaluation.SnapshotCurve(clf, eval, new Purification.PurifierSettings(Steps: 1), 0, transfer, 0, CPU);
        var p = gainOnly.Measure(snaps[1], WeightsChoice.Model, [0.25], batch: 4);
        Assert.Null(p.NaturalAccuracy);
        Assert.Null(p.TransferAccuracy);
        Assert.Equal(curve.Points[1].DenoiseGain[0.25], p.DenoiseGain[0.25], 12);
        gainOnly.Write(Path.Combine(dir, "gain"), "t");
        Assert.EndsWith(",,", File.ReadAllLines(Path.Combine(dir, "gain", "curve.csv"))[1]);
        Assert.False(File.Exists(Path.Combine(dir, "gain", "curve-accuracy.png")));
        Assert.True(File.Exists(Path.Combine(dir, "gain", "curve-denoise.png")));
    }
}
