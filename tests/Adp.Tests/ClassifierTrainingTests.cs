using Adp.IO;
using Adp.Models;
using Adp.Training;

namespace Adp.Tests;

[Collection(GlobalRngCollection.Name)]
public class ClassifierTrainingTests
{
    private static ClassifierTrainingOptions Tiny(int epochs) => new()
    {
        Dataset = "fashion-mnist",
        Model = ClassifierConfig.SmallCnn(),
        Epochs = epochs,
        BatchSize = 8,
        LearningRate = 0.05,
        Schedule = LrSchedule.OneCycle,
        HorizontalFlip = true,
        CropPadding = 2,
        ValidationImages = 8,
        Seed = 3,
        CheckpointEvery = 0,
    };

    [Fact]
    public void ResumedRun_IsIdenticalToUninterruptedRun()
    {
        var dir = Directory.CreateTempSubdirectory("adp-clf-resume-").FullName;
        using var data = ScoreTrainingTests.SyntheticDataset(40);
        string straight = Path.Combine(dir, "a.ckpt"), resumed = Path.Combine(dir, "b.ckpt");
        var whole = new ClassifierTrainer(Tiny(2), data, straight);
        Assert.Equal(8, whole.TotalIterations);  // 32 training images / batch 8 × 2 epochs
        whole.Run(resume: false);

        using var cts = new CancellationTokenSource();
        new ClassifierTrainer(Tiny(2), data, resumed).Run(false, p => { if (p.Iteration == 5) cts.Cancel(); }, cts.Token);
        var second = new ClassifierTrainer(Tiny(2), data, resumed);
        Assert.Equal(8, second.Run(resume: true));

        using var a = SafeTensors.Load(straight);
        using var b = SafeTensors.Load(resumed);
        foreach (var (name, t) in a.Tensors)
        {
            if (name == Checkpoint.OptimizerTensor) continue;
            Assert.True(t.bytes.SequenceEqual(b.Get(name).bytes), $"{name} differs between resumed and uninterrupted runs");
        }
        Assert.Equal(a.Metadata["validation_accuracy"], b.Metadata["validation_accuracy"]);
        Assert.Equal(2, a.Metadata["validation_accuracy"].Split(',').Length);
    }

    [Fact]
    public void NoiseAndAdversarialTraining_ResumeExactly_AndChangeTheWeights()
    {
        var dir = Directory.CreateTempSubdirectory("adp-clf-adv-").FullName;
        using var data = ScoreTrainingTests.SyntheticDataset(40);
        var opts = Tiny(1) with { NoiseSigma = 0.3, AdvEpsilon = 0.1, AdvSteps = 2, AdvEpsilonRampEpochs = 0.5, AdvValidationImages = 4 };
        string straight = Path.Combine(dir, "a.ckpt"), resumed = Path.Combine(dir, "b.ckpt"), plain = Path.Combine(dir, "p.ckpt");
        new ClassifierTrainer(opts, data, straight).Run(resume: false);
        using var cts = new CancellationTokenSource();
        new ClassifierTrainer(opts, data, resumed).Run(false, p => { if (p.Iteration == 2) cts.Cancel(); }, cts.Token);
        new ClassifierTrainer(opts, data, resumed).Run(resume: true);
        new ClassifierTrainer(Tiny(1), data, plain).Run(resume: false);
        using var a = SafeTensors.Load(straight);
        using var b = SafeTensors.Load(resumed);
        using var c = SafeTensors.Load(plain);
        bool anyDiffersFromPlain = false;
        foreach (var (name, t) in a.Tensors)
        {
            if (name == Checkpoint.OptimizerTensor) continue;
            Assert.True(t.bytes.SequenceEqual(b.Get(name).bytes), $"{name} differs between resumed and uninterrupted runs");
            anyDiffersFromPlain |= !t.bytes.SequenceEqual(c.Get(name).bytes);
        }
        Assert.True(anyDiffersFromPlain, "noise and adversarial training must change the weights");
        Assert.Equal(a.Metadata["validation_pgd_accuracy"], b.Metadata["validation_pgd_accuracy"]);
        var robust = double.Parse(a.Metadata["validation_pgd_accuracy"], System.Globalization.CultureInfo.InvariantCulture);
        var clean = double.Parse(a.Metadata["validation_accuracy"], System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(robust, 0, 1);
        Assert.Equal(0, robust * 4 % 1, 6);  // a count out of the 4 images attacked
        Assert.Equal("", c.Metadata["validation_pgd_accuracy"]);  // no adversarial training, no PGD column
        Assert.InRange(clean, 0, 1);
    }

    [Fact]
    public void AdversarialTraining_ResumedAfterAnEpoch_KeepsThePgdValidationColumn()
    {
        var dir = Directory.CreateTempSubdirectory("adp-clf-advval-").FullName;
        using var data = ScoreTrainingTests.SyntheticDataset(40);
        var opts = Tiny(2) with { AdvEpsilon = 0.1, AdvSteps = 2, AdvEpsilonRampEpochs = 1.5, AdvValidationImages = 4, AdvStepSize = 0.04 };
        string straight = Path.Combine(dir, "a.ckpt"), resumed = Path.Combine(dir, "b.ckpt");
        new ClassifierTrainer(opts, data, straight).Run(resume: false);
        using var cts = new CancellationTokenSource();
        // 4 batches per epoch: stop after the first epoch's validation, inside the ramp (1.5 epochs = 6 iterations).
        new ClassifierTrainer(opts, data, resumed).Run(false, p => { if (p.Iteration == 5) cts.Cancel(); }, cts.Token);
        using (var mid = SafeTensors.Load(resumed)) Assert.Single(mid.Metadata["validation_pgd_accuracy"].Split(','));
        var second = new ClassifierTrainer(opts, data, resumed);
        second.Run(resume: true);
        Assert.Equal(2, second.RobustValidationAccuracy.Count);
        using var a = SafeTensors.Load(straight);
        using var b = SafeTensors.Load(resumed);
        Assert.Equal(a.Metadata["validation_pgd_accuracy"], b.Metadata["validation_pgd_accuracy"]);
        foreach (var (name, t) in a.Tensors)
            if (name != Checkpoint.OptimizerTensor) Assert.True(t.bytes.SequenceEqual(b.Get(name).bytes), $"{name} differs after resuming in the ramp");
    }

    [Fact]
    public void EpsilonRamp_GrowsLinearly_ThenHolds()
    {
        using var data = ScoreTrainingTests.SyntheticDataset(16);
        var ramped = new ClassifierTrainer(Tiny(4) with { AdvEpsilon = 0.3, AdvEpsilonRampEpochs = 2 }, data, "unused.ckpt");
        // 10 batches per epoch → the ramp spans iterations 0..19; iteration i trains at 0.3·(i+1)/20.
        Assert.Equal(0.015, ramped.AdvEpsilonAt(0, 10), 12);
        Assert.Equal(0.15, ramped.AdvEpsilonAt(9, 10), 12);
        Assert.Equal(0.3, ramped.AdvEpsilonAt(19, 10), 12);
        Assert.Equal(0.3, ramped.AdvEpsilonAt(35, 10), 12);
        var flat = new ClassifierTrainer(Tiny(4) with { AdvEpsilon = 0.3 }, data, "unused.ckpt");
        Assert.Equal(0.3, flat.AdvEpsilonAt(0, 10), 12);
    }

    [Fact]
    public void RampedAdversarialBatch_LiesInTheSmallerBall()
    {
        TorchSharp.torch.manual_seed(5);
        var net = Classifier.Create(ClassifierConfig.SmallCnn());
        using var data = ScoreTrainingTests.SyntheticDataset(16);
        var x = data.Images(0, 16);
        var trainer = new ClassifierTrainer(Tiny(1) with { AdvEpsilon = 0.3, AdvSteps = 5 }, data, "unused.ckpt");
        var adv = trainer.Adversarial(net, x, data.Labels, new TorchSharp.torch.Generator(1), epsilon: 0.02);
        float distance = (adv - x).abs().max().item<float>();
        Assert.True(distance <= 0.02f + 1e-6f, $"‖δ‖∞ = {distance} > 0.02");
        Assert.True(distance > 0.01f, $"the attack should use its radius (‖δ‖∞ = {distance})");
    }

    [Fact]
    public void AdversarialBatch_LiesInTheBall_AndRaisesTheLoss()
    {
        TorchSharp.torch.manual_seed(5);
        var net = Classifier.Create(ClassifierConfig.SmallCnn());
        net.train();
        using var data = ScoreTrainingTests.SyntheticDataset(16);
        var x = data.Images(0, 16);
        var y = data.Labels;
        var trainer = new ClassifierTrainer(Tiny(1) with { AdvEpsilon = 0.05, AdvSteps = 5 }, data, "unused.ckpt");
        var adv = trainer.Adversarial(net, x, y, new TorchSharp.torch.Generator(1));
        Assert.True(net.training, "the trainer's mode is restored");
        Assert.True((adv - x).abs().max().item<float>() <= 0.05f + 1e-6f);
        net.eval();
        using var _ = TorchSharp.torch.no_grad();
        float clean = TorchSharp.torch.nn.functional.cross_entropy(net.forward(x), y).item<float>();
        float attacked = TorchSharp.torch.nn.functional.cross_entropy(net.forward(adv), y).item<float>();
        Assert.True(attacked > clean, $"PGD must raise the loss: {clean} → {attacked}");
    }
}
