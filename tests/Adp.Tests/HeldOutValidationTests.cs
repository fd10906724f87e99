using Adp.IO;
using Adp.Models;
using Adp.Training;

namespace Adp.Tests;

/// <summary>Tuning on the validation split must not use images the classifier trained on: a classifier records its
/// hold-out, and the commands that take --split validation refuse a larger one.</summary>
[Collection(GlobalRngCollection.Name)]
public class HeldOutValidationTests
{
    [Fact]
    public void RequireHeldOut_RefusesOnlyASplitLargerThanTheRecordedHoldOut()
    {
        var meta = new Dictionary<string, string> { [ModelChecks.HeldOutKey] = "2000" };
        ModelChecks.RequireHeldOut("c.ckpt", meta, 2000);
        ModelChecks.RequireHeldOut("c.ckpt", meta, 1);
        var e = Assert.Throws<AdpException>(() => ModelChecks.RequireHeldOut("c.ckpt", meta, 2001));
        Assert.Contains("c.ckpt held out only the last 2000", e.Message);
        Assert.Contains("1 of the last 2001", e.Message);
        Assert.Contains("--validation-images 2000", e.Message);
        // Checkpoints from before the key (the shipped ones) are not checked.
        ModelChecks.RequireHeldOut("old.ckpt", new Dictionary<string, string>(), 5000);
    }

    [Fact]
    public void ClassifierTraining_RecordsItsHoldOut()
    {
        var dir = Directory.CreateTempSubdirectory("adp-holdout-").FullName;
        using var data = ScoreTrainingTests.SyntheticDataset(24);
        var path = Path.Combine(dir, "c.ckpt");
        new ClassifierTrainer(new ClassifierTrainingOptions
        {
            Dataset = "fashion-mnist", Model = ClassifierConfig.SmallCnn(), Epochs = 1, BatchSize = 8, ValidationImages = 7, Seed = 1,
            CheckpointEvery = 0,
        }, data, path).Run(resume: false);
        using var f = SafeTensors.Load(path);
        Assert.Equal("7", f.Metadata[ModelChecks.HeldOutKey]);
    }

    [DataFact]
    public void Cli_RefusesValidationImagesTheClassifierTrainedOn_AndAcceptsTheHoldOut()
    {
        var dir = Directory.CreateTempSubdirectory("adp-holdout-cli-").FullName;
        // The shipped MNIST CNN with a recorded hold-out of 3 images: asking for the last 5 must be refused by every
        // command that takes --split validation and a classifier; asking for the last 3 runs.
        var clf = Path.Combine(dir, "clf.ckpt");
        using (var f = SafeTensors.Load(TestEnvironment.Model("mnist-smallcnn.ckpt")))
        {
            var meta = new Dictionary<string, string>(f.Metadata) { [ModelChecks.HeldOutKey] = "3" };
            SafeTensors.Save(clf, f.Tensors, meta);
        }
        string score = TestEnvironment.Model("mnist-score.ckpt"), data = TestEnvironment.DataDir!;
        string[][] refused =
        [
            ["eval", "defended", "--classifier", clf, "--score", score, "--images", "2", "--runs", "1", "--steps", "1", "--split", "validation",
             "--validation-images", "5", "--data-dir", data],
            ["eval", "tune", "--classifier", clf, "--score", score, "--images", "2", "--runs", "1", "--steps", "1", "--split", "validation",
             "--validation-images", "5", "--data-dir", data, "--out", Path.Combine(dir, "tune")],
            ["eval", "snapshots", score, "--classifier", clf, "--images", "2", "--runs", "0", "--split", "validation",
             "--data-dir", data, "--out", Path.Combine(dir, "snap")],
        ];
        foreach (var args in refused)
        {
            var (code, _, err) = CliErrorTests.RunAdp(["--threads", "1", .. args]);
            Assert.True(code == 2, $"adp {string.Join(' ', args.Take(2))}: exit {code}, stderr {err}");
            Assert.Contains("held out only the last 3 training images", err);
            Assert.Single(err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        }
        var ok = CliErrorTests.RunAdp("--threads", "1", "eval", "defended", "--classifier", clf, "--score", score, "--images", "2", "--runs", "1",
            "--steps", "1", "--split", "validation", "--validation-images", "3", "--data-dir", data);
        Assert.True(ok.Code == 0, ok.Err);
        Assert.Contains("validation (last 3 training images)", ok.Out);
    }
}
