using Adp.IO;
using Adp.Models;
using Adp.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Adp.Tests;

/// <summary>A training whose loss stops being finite must stop at once, with one line, leaving its last (finite)
/// checkpoint in place, instead of running on for hours and writing NaN into every later checkpoint and snapshot.</summary>
[Collection(GlobalRngCollection.Name)]
public class DivergenceTests
{
    // A learning rate of 1e30 moves every weight by ~1e30 in the first Adam (or SGD) step: the next forward overflows float32.
    private const double Explosive = 1e30;

    private static void AssertFinite(string checkpoint)
    {
        using var f = SafeTensors.Load(checkpoint);
        Assert.All(f.Tensors, kv => Assert.True(kv.Value.isfinite().all().item<bool>(), $"{kv.Key} is not finite"));
    }

    [Fact]
    public void ScoreTraining_StopsAtTheFirstNonFiniteLoss_KeepingTheLastCheckpoint()
    {
        var dir = Directory.CreateTempSubdirectory("adp-diverge-").FullName;
        try
        {
            using var data = ScoreTrainingTests.SyntheticDataset();
            var path = Path.Combine(dir, "s.ckpt");
            var opts = new ScoreTrainingOptions
            {
                Dataset = "fashion-mnist", Model = new ScoreModelConfig(1, 28, 4, 1.0, 0.01, 5), Iterations = 50, BatchSize = 8,
                LearningRate = Explosive, Seed = 7, CheckpointEvery = 1,
            };
            var trainer = new ScoreTrainer(opts, data, path);
            var e = Assert.Throws<AdpException>(() => trainer.Run(resume: false));
            Assert.Contains("training diverged at iteration", e.Message);
            Assert.Contains(path, e.Message);
            Assert.Contains("resume it with --resume --grad-clip 1", e.Message);   // a checkpoint exists (every iteration)
            Assert.True(trainer.Iteration is >= 1 and < 50, $"stopped at {trainer.Iteration}");
            AssertFinite(path);
            Assert.Equal(trainer.Iteration, ScoreModelFile.Load(path).Info.Iteration);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void ClassifierTraining_StopsAtTheFirstNonFiniteLoss()
    {
        var dir = Directory.CreateTempSubdirectory("adp-diverge-clf-").FullName;
        try
        {
            using var data = ScoreTrainingTests.SyntheticDataset();
            var path = Path.Combine(dir, "c.ckpt");
            var opts = new ClassifierTrainingOptions
            {
                Dataset = "fashion-mnist", Model = ClassifierConfig.SmallCnn(), Epochs = 5, BatchSize = 8, LearningRate = Explosive,
                Schedule = LrSchedule.Constant, ValidationImages = 0, Seed = 3, CheckpointEvery = 1,
            };
            var trainer = new ClassifierTrainer(opts, data, path);
            var e = Assert.Throws<AdpException>(() => trainer.Run(false));
            Assert.Contains("training diverged at iteration", e.Message);
            Assert.Contains("--lr", e.Message);
            if (File.Exists(path)) AssertFinite(path);
        }
        finally { Directory.Delete(dir, true); }
    }

    /// <summary>Without clipping the gradient is left bit-identical (a run is the same as before the check); with it, its norm is bounded.</summary>
    [Fact]
    public void NoClip_LeavesTheGradientBitIdentical_AndClipBoundsItsNorm()
    {
        var w = new TorchSharp.Modules.Parameter(tensor(new float[] { 3, 4 }));
        var loss = (w * w).sum();
        loss.backward();
        var before = w.grad!.clone();
        Assert.Equal(25, Divergence.ClipAndCheck(loss, [w], 0, 0, "x.ckpt", "r", "s"), 6);
        Assert.True(before.eq(w.grad!).all().item<bool>());
        Divergence.ClipAndCheck(loss, [w], 1, 0, "x.ckpt", "r", "s");   // ‖(6, 8)‖ = 10 → clipped to norm 1
        Assert.Equal(1.0, w.grad!.norm().item<float>(), 4);
        // A non-finite loss before any checkpoint: the message offers only a new run.
        var e = Assert.Throws<AdpException>(() =>
            Divergence.ClipAndCheck(loss.mul(HeldScalars.NaN), [w], 0, 4, "never-written.ckpt", "--grad-clip 1", "s"));
        Assert.Contains("training diverged at iteration 5", e.Message);
        Assert.Contains("no checkpoint was written yet (never-written.ckpt): start again with s", e.Message);
        Assert.DoesNotContain("--resume", e.Message);
    }
}
