using System.Text.Json;
using System.Text.Json.Nodes;
using Adp.IO;
using Adp.Models;
using Adp.Training;

namespace Adp.Tests;

/// <summary>Tuning on the validation split must not use images the classifier trained on: a classifier checkpoint records
/// its training options ("training": TrainImages, ValidationImages), and the commands that take --split validation refuse
/// a split reaching into the images it trained on.</summary>
[Collection(GlobalRngCollection.Name)]
public class HeldOutValidationTests
{
    private static Dictionary<string, string> Training(int trainImages, int validationImages) =>
        new() { ["training"] = JsonSerializer.Serialize(new { TrainImages = trainImages, ValidationImages = validationImages, Epochs = 3 }) };

    [Fact]
    public void RequireHeldOut_AllowsExactlyTheImagesTheClassifierDidNotTrainOn()
    {
        // CIFAR-10 ResNet: 50,000 training images, the last 2,000 held out → trained on the first 48,000.
        var cifar = Training(0, 2000);
        ClassifierTrainer.RequireHeldOut("c.ckpt", cifar, 2000, 50000);
        var e = Assert.Throws<AdpException>(() => ClassifierTrainer.RequireHeldOut("c.ckpt", cifar, 5000, 50000));
        Assert.Contains("c.ckpt trained on the first 48000 training images, so only the last 2000 are unseen", e.Message);
        Assert.Contains("3000 of the last 5000", e.Message);
        Assert.Contains("--validation-images 2000", e.Message);
        // The first 55,000 of 60,000 used, the last 5,000 of those held out: trained on the first 50,000, 10,000 unseen.
        ClassifierTrainer.RequireHeldOut("s.ckpt", Training(55000, 5000), 10000, 60000);
        Assert.Throws<AdpException>(() => ClassifierTrainer.RequireHeldOut("s.ckpt", Training(55000, 5000), 10001, 60000));
        // Nothing held out: no validation split at all.
        var none = Assert.Throws<AdpException>(() => ClassifierTrainer.RequireHeldOut("n.ckpt", Training(0, 0), 1, 60000));
        Assert.Contains("trained on every training image; evaluate it on the test split", none.Message);
        // Checkpoints without the record are not checked.
        ClassifierTrainer.RequireHeldOut("old.ckpt", new Dictionary<string, string>(), 5000, 60000);
    }

    [Fact]
    public void ScoreModelOverlap_CountsTheValidationImagesItTrainedOn()
    {
        static Dictionary<string, string> Score(int trainImages) =>
            new() { [ScoreTrainer.OptionsKey] = JsonSerializer.Serialize(new { TrainImages = trainImages, Iterations = 10 }) };
        Assert.Equal(5000, ScoreTrainer.ValidationOverlap(Score(0), 5000, 60000));      // all training images: every one seen
        Assert.Equal(0, ScoreTrainer.ValidationOverlap(Score(55000), 5000, 60000));     // the tail held out
        Assert.Equal(2000, ScoreTrainer.ValidationOverlap(Score(57000), 5000, 60000));  // 55,000…56,999 seen
        Assert.Equal(0, ScoreTrainer.ValidationOverlap(Score(55000), 4000, 60000));
        Assert.Equal(1, ScoreTrainer.ValidationOverlap(Score(55001), 5000, 60000));     // the boundary: image 55,000 seen
        Assert.Equal(5000, ScoreTrainer.ValidationOverlap(Score(90000), 5000, 60000));  // more than there are: all
        Assert.Equal(0, ScoreTrainer.ValidationOverlap(Score(48000), 2000, 50000));     // CIFAR-10, the ResNet's hold-out
        Assert.Equal(2000, ScoreTrainer.ValidationOverlap(Score(0), 2000, 50000));
        Assert.Null(ScoreTrainer.ValidationOverlap(new Dictionary<string, string>(), 5000, 60000));
        Assert.Null(ScoreTrainer.ValidationOverlap(new Dictionary<string, string> { [ScoreTrainer.OptionsKey] = "{not json" }, 5000, 60000));
    }

    [Fact]
    public void TheRecordAgreesWithWhatTheTrainerTrainsOn()
    {
        var dir = Directory.CreateTempSubdirectory("adp-holdout-").FullName;
        using var data = ScoreTrainingTests.SyntheticDataset(40);
        var path = Path.Combine(dir, "c.ckpt");
        var trainer = new ClassifierTrainer(new ClassifierTrainingOptions
        {
            Dataset = "fashion-mnist", Model = ClassifierConfig.SmallCnn(), Epochs = 1, BatchSize = 8, TrainImages = 30, ValidationImages = 7,
            Seed = 1, CheckpointEvery = 0,
        }, data, path);
        trainer.Run(resume: false);
        int unseen = data.Count - trainer.TrainCount;  // the trainer's own count of the images it trains on (the first TrainCount)
        Assert.Equal(17, unseen);
        using var f = SafeTensors.Load(path);
        ClassifierTrainer.RequireHeldOut(path, f.Metadata, unseen, data.Count);
        Assert.Throws<AdpException>(() => ClassifierTrainer.RequireHeldOut(path, f.Metadata, unseen + 1, data.Count));
    }

    /// <summary>The shipped MNIST CNN with its training record rewritten to hold out only the last 3 images.</summary>
    private static string HoldingOutThree(string dir)
    {
        var clf = Path.Combine(dir, "clf.ckpt");
        using var f = SafeTensors.Load(TestEnvironment.Model("mnist-smallcnn.ckpt"));
        var training = JsonNode.Parse(f.Metadata["training"])!.AsObject();
        training["ValidationImages"] = 3;
        training["TrainImages"] = 0;
        SafeTensors.Save(clf, f.Tensors, new Dictionary<string, string>(f.Metadata) { ["training"] = training.ToJsonString() });
        return clf;
    }

    /// <summary>A copy of a score checkpoint whose training record says it used the first <paramref name="trainImages"/>
    /// training images (0: all of them).</summary>
    private static string WithTrainImages(string score, string path, int trainImages)
    {
        using var sf = SafeTensors.Load(score);
        var training = JsonNode.Parse(sf.Metadata[ScoreTrainer.OptionsKey])!.AsObject();
        training["TrainImages"] = trainImages;
        SafeTensors.Save(path, sf.Tensors, new Dictionary<string, string>(sf.Metadata) { [ScoreTrainer.OptionsKey] = training.ToJsonString() });
        return path;
    }

    [DataFact]
    public void Cli_RefusesValidationImagesTheClassifierTrainedOn_AndAcceptsTheHoldOut()
    {
        var dir = Directory.CreateTempSubdirectory("adp-holdout-cli-").FullName;
        var clf = HoldingOutThree(dir);
        // A score model that trained on every training image (TrainImages 0 = all), whatever the shipped one records.
        string score = WithTrainImages(TestEnvironment.Model("mnist-score.ckpt"), Path.Combine(dir, "score-all.ckpt"), 0), data = TestEnvironment.DataDir!;
        string[][] refused =
        [
            ["eval", "defended", "--classifier", clf, "--score", score, "--images", "2", "--runs", "1", "--steps", "1", "--split", "validation",
             "--validation-images", "5", "--data-dir", data],
            ["eval", "tune", "--classifier", clf, "--score", score, "--images", "2", "--runs", "1", "--steps", "1", "--split", "validation",
             "--validation-images", "5", "--data-dir", data, "--out", Path.Combine(dir, "tune")],
            ["eval", "snapshots", score, "--classifier", clf, "--images", "2", "--runs", "1", "--steps", "1", "--split", "validation",
             "--data-dir", data, "--out", Path.Combine(dir, "snap")],
            ["eval", "robust", "--classifier", clf, "--score", score, "--images", "2", "--runs", "1", "--steps", "1", "--split", "validation",
             "--attack", "kind=none,target=blind", "--data-dir", data, "--out", Path.Combine(dir, "robust")],
            ["eval", "robust", "--classifier", clf, "--score", score, "--images", "2", "--runs", "1", "--steps", "1", "--split", "validation",
             "--validation-images", "4", "--attack", "kind=none,target=blind", "--data-dir", data, "--out", Path.Combine(dir, "robust4")],
        ];
        foreach (var args in refused)
        {
            var (code, _, err) = CliErrorTests.RunAdp(["--threads", "1", .. args]);
            Assert.True(code == 2, $"adp {string.Join(' ', args.Take(2))}: exit {code}, stderr {err}");
            Assert.Contains("so only the last 3 are unseen", err);
            Assert.Single(err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        }
        var ok = CliErrorTests.RunAdp("--threads", "1", "eval", "defended", "--classifier", clf, "--score", score, "--images", "2", "--runs", "1",
            "--steps", "1", "--split", "validation", "--validation-images", "3", "--data-dir", data);
        Assert.True(ok.Code == 0, ok.Err);
        Assert.Contains("validation (last 3 training images)", ok.Out);
        // A score model that trained on every training image: noted (not refused), naming the remedy (the console wraps
        // long lines, so whitespace is collapsed before matching).
        string Flat(string text) => System.Text.RegularExpressions.Regex.Replace(text, @"\s+", " ");
        Assert.Contains("trained on 3 of the 3 validation-split images", Flat(ok.Out));
        Assert.Contains("--train-images 59997", Flat(ok.Out));
        // A score model that held the tail out: no note.
        var heldOutScore = WithTrainImages(score, Path.Combine(dir, "score-heldout.ckpt"), 59997);
        var quiet = CliErrorTests.RunAdp("--threads", "1", "eval", "defended", "--classifier", clf, "--score", heldOutScore, "--images", "2",
            "--runs", "1", "--steps", "1", "--split", "validation", "--validation-images", "3", "--data-dir", data);
        Assert.True(quiet.Code == 0, quiet.Err);
        Assert.DoesNotContain("validation-split images", Flat(quiet.Out));

        // --validation-images with the test split would be silently ignored: refused.
        var test = CliErrorTests.RunAdp("--threads", "1", "eval", "defended", "--classifier", clf, "--score", score, "--images", "2",
            "--validation-images", "3", "--data-dir", data);
        Assert.Equal(2, test.Code);
        Assert.Contains("--validation-images: applies to --split validation only", test.Err);

        // eval robust takes the split size too, and records it (the report names the split, the config the count).
        var robustDir = Path.Combine(dir, "robust-ok");
        var robust = CliErrorTests.RunAdp("--threads", "1", "eval", "robust", "--classifier", clf, "--score", score, "--images", "2", "--runs", "1",
            "--steps", "1", "--split", "validation", "--validation-images", "3", "--attack", "kind=none,target=blind", "--data-dir", data,
            "--out", robustDir);
        Assert.True(robust.Code == 0, robust.Err);
        Assert.Contains("validation (last 3 training images)", File.ReadAllText(Path.Combine(robustDir, "results.json")));
        Assert.Equal(3, JsonNode.Parse(File.ReadAllText(Path.Combine(robustDir, "config.json")))!["ValidationImages"]!.GetValue<int>());
        Assert.Contains("trained on 3 of the 3 validation-split images", Flat(robust.Out));
        // Unset, it is not written: report folders made before the setting existed keep their configuration (and resume).
        var unset = new Adp.Evaluation.RobustConfig { Classifier = "c", Score = "s" };
        Assert.DoesNotContain("ValidationImages", System.Text.Json.JsonSerializer.Serialize(unset, Adp.Evaluation.RobustConfig.Json));
        var robustTest = CliErrorTests.RunAdp("--threads", "1", "eval", "robust", "--classifier", clf, "--score", score, "--images", "2",
            "--validation-images", "3", "--attack", "kind=none,target=blind", "--data-dir", data, "--out", Path.Combine(dir, "robust-test"));
        Assert.Equal(2, robustTest.Code);
        Assert.Contains("--validation-images (\"ValidationImages\" in a config file): applies to --split validation only", robustTest.Err);
    }

    [DataFact]
    public void Cli_TheShippedCifarResNet_IsTunedOnItsOwnHoldOut()
    {
        string clf = TestEnvironment.Model("cifar10-resnet-small.ckpt"), score = TestEnvironment.Model("cifar10-score.ckpt");
        var (code, _, err) = CliErrorTests.RunAdp("--threads", "1", "eval", "defended", "--classifier", clf, "--score", score, "--images", "1",
            "--runs", "1", "--steps", "1", "--split", "validation", "--data-dir", TestEnvironment.DataDir!);
        Assert.Equal(2, code);
        Assert.Contains("trained on the first 48000 training images, so only the last 2000 are unseen", err);
        Assert.Contains("--validation-images 2000", err);
    }
}
