using Adp.IO;
using Adp.Models;
using Adp.Training;

namespace Adp.Tests;

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
}
