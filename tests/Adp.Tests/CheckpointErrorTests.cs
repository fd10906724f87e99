using Adp.IO;
using Adp.Models;
using static TorchSharp.torch;

namespace Adp.Tests;

/// <summary>Bad model files through the `adp` executable: one line, exit code 2, naming what is wrong.</summary>
public class CheckpointErrorTests
{
    private static void AssertError((int Code, string Out, string Err) r, params string[] mustContain)
    {
        Assert.True(r.Code == 2, $"exit code {r.Code}; stderr: {r.Err}");
        Assert.Single(r.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        foreach (var s in mustContain) Assert.Contains(s, r.Err);
    }

    private static string SmallClassifier(int channels = 1, int size = 28, string dataset = "mnist")
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory("adp-clf-").FullName, "clf.ckpt");
        using var net = Classifier.Create(ClassifierConfig.SmallCnn(channels, size));
        Checkpoint.Save(path, ClassifierFile.Kind, [("model.", net)], new Dictionary<string, string>
        {
            ["config"] = System.Text.Json.JsonSerializer.Serialize(net.Config), ["dataset"] = dataset,
        });
        return path;
    }

    [Fact]
    public void CheckpointOfAnotherKind()
    {
        AssertError(CliErrorTests.RunAdp("eval", "denoise", "--score", SmallClassifier()), "is a classifier checkpoint, expected a score-model");
    }

    [Fact]
    public void TruncatedCheckpoint()
    {
        var src = CliErrorTests.ScoreCheckpoint();
        var bytes = File.ReadAllBytes(src);
        var cut = Path.Combine(Directory.CreateTempSubdirectory("adp-cut-").FullName, "cut.ckpt");
        File.WriteAllBytes(cut, bytes[..(bytes.Length * 2 / 3)]);
        AssertError(CliErrorTests.RunAdp("eval", "denoise", "--score", cut), cut, "truncated");
    }

    [Fact]
    public void ImageSizeDoesNotMatchTheScoreModel()
    {
        var dir = Directory.CreateTempSubdirectory("adp-png-").FullName;
        var png = Path.Combine(dir, "big.png");
        Adp.Data.PngImages.Write(png, rand(1, 32, 32));
        AssertError(CliErrorTests.RunAdp("purify", "--score", CliErrorTests.ScoreCheckpoint(), "--input", png, "--out", dir),
            "big.png", "32×32", "expects 28×28");
    }

    [Fact]
    public void ClassifierDoesNotMatchTheDataSet()
    {
        AssertError(CliErrorTests.RunAdp("eval", "clean", "--classifier", SmallClassifier(), "--dataset", "cifar-10"),
            "expects 1×28×28 images but cifar-10 has 3×32×32");
    }

    [Theory]
    [InlineData("iteration", "many", "checkpoint metadata 'iteration' must be an integer, got 'many'")]
    [InlineData("seed", "1.5", "checkpoint metadata 'seed' must be an integer, got '1.5'")]
    [InlineData("config", "null", "checkpoint metadata 'config' is not a valid score-model configuration")]
    public void ScoreCheckpointWithBadMetadata(string key, string value, string message)
    {
        using var f = SafeTensors.Load(CliErrorTests.ScoreCheckpoint());
        var path = Path.Combine(Directory.CreateTempSubdirectory("adp-meta-").FullName, "bad.ckpt");
        SafeTensors.Save(path, f.Tensors, new Dictionary<string, string>(f.Metadata) { [key] = value });
        var e = Assert.Throws<AdpException>(() => ScoreModelFile.Load(path));
        Assert.Contains(path, e.Message);
        Assert.Contains(message, e.Message);
    }

    [ReferenceFact]
    public void SafetensorsWithMissingOrMisshapenTensors()
    {
        var dir = Directory.CreateTempSubdirectory("adp-st-").FullName;
        // A classifier's weights offered as a score model: no NCSNv2 tensors at all.
        AssertError(CliErrorTests.RunAdp("import", "--safetensors", TestEnvironment.ReferenceFile("smallcnn_mnist_a.safetensors"),
            "--dataset", "mnist", "--out", Path.Combine(dir, "x.ckpt")), "begin_conv.weight");
        // Real NCSNv2 weights with one tensor removed, and with one reshaped.
        using var f = SafeTensors.Load(TestEnvironment.ReferenceFile("ncsnv2_mnist_ngf16_a.safetensors"));
        var missing = Path.Combine(dir, "missing.safetensors");
        SafeTensors.Save(missing, f.Tensors.Where(kv => kv.Key != "score.res2.0.conv1.weight"));
        AssertError(CliErrorTests.RunAdp("import", "--safetensors", missing, "--dataset", "mnist", "--out", Path.Combine(dir, "m.ckpt")),
            "missing", "score.res2.0.conv1.weight");
        var misshapen = Path.Combine(dir, "misshapen.safetensors");
        SafeTensors.Save(misshapen, f.Tensors.Select(kv => kv.Key == "score.end_conv.bias" ? new KeyValuePair<string, Tensor>(kv.Key, zeros(2)) : kv));
        AssertError(CliErrorTests.RunAdp("import", "--safetensors", misshapen, "--dataset", "mnist", "--out", Path.Combine(dir, "s.ckpt")),
            "score.end_conv.bias is [2], expected [1]");
    }
}
