using Adp.IO;
using Adp.Models;
using static TorchSharp.torch;

namespace Adp.Tests;

/// <summary>Issue #11 item 5: NCSNv2 checkpoints as the official NCSNv2 / ADP code saves them. The fixture
/// tests/fixtures/ncsnv2-official-tiny.pth (a tiny CIFAR-shaped NCSNv2, ngf 4, in nn.DataParallel, with Adam state, epoch,
/// step and an EMA shadow set to half the raw weights) and its expected values were made once with Debian's
/// python3-torch 1.13: `cd bench/pytorch && /usr/bin/python3 make_official_checkpoint_fixture.py ../../tests/fixtures`.</summary>
public class OfficialCheckpointTests
{
    private static string Fixture(string name) => Path.Combine(TestEnvironment.RepoRoot, "tests", "fixtures", name);

    [Theory]
    [InlineData("Model", 1.0)]
    [InlineData("Ema", 0.5)]
    public void Import_ReadsTheChosenWeights_AndComputesTheReferenceOutput(string weights, double scale)
    {
        var dir = Directory.CreateTempSubdirectory("adp-official-").FullName;
        var outPath = Path.Combine(dir, "s.ckpt");
        var (code, _, err) = CliErrorTests.RunAdp("import", "--checkpoint", Fixture("ncsnv2-official-tiny.pth"), "--weights", weights,
            "--dataset", "cifar-10", "--out", outPath);
        Assert.True(code == 0, err);
        var (net, info) = ScoreModelFile.Load(outPath);
        Assert.Equal(new ScoreModelConfig(3, 32, 4, 1.0, info.Config.SigmaMin, 10), info.Config);
        Assert.Equal(0.01, info.Config.SigmaMin, 6);       // the "sigmas" buffer, read at float32 precision
        Assert.Equal("1234", info.Metadata["iteration"]);   // the saved step
        using var expected = SafeTensors.Load(Fixture("ncsnv2-official-tiny.expected.safetensors"));
        var sd = net.state_dict();
        int compared = 0;
        foreach (var (name, t) in expected.Tensors.Where(kv => kv.Key.StartsWith("raw.")))
        {
            var key = name["raw.".Length..];
            var want = key.Contains("normalizer") || key.EndsWith("weight") || key.EndsWith("bias") || key.EndsWith("alpha")
                       || key.EndsWith("gamma") || key.EndsWith("beta") ? t.Times(scale) : t;   // the EMA shadow holds parameters only
            Assert.True((sd[key] - want).abs().max().item<float>() == 0, $"{key} ({weights})");
            compared++;
        }
        Assert.True(compared > 100, $"only {compared} tensors compared");
        if (weights == "Model")
        {
            using var _ = no_grad();
            var h = net.forward(expected.Get("x"));
            // float32 forward of the same network in two libtorch builds: the parity tests' 1e-4 bound.
            Assert.True((h - expected.Get("h_x")).abs().max().item<float>() < 1e-4);
        }
    }

    [Fact]
    public void NotACheckpoint_IsAOneLineError()
    {
        var (code, _, err) = CliErrorTests.RunAdp("import", "--checkpoint", Path.Combine(TestEnvironment.RepoRoot, "README.md"),
            "--dataset", "cifar-10", "--out", Path.Combine(Path.GetTempPath(), "adp-never.ckpt"));
        Assert.Equal(2, code);
        Assert.Contains("not a zip-format PyTorch checkpoint", err);
        Assert.Single(err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        var (c2, _, e2) = CliErrorTests.RunAdp("import", "--dataset", "cifar-10", "--out", "x.ckpt");
        Assert.Equal(2, c2);
        Assert.Contains("exactly one of --safetensors", e2);
    }

    [Fact]
    public void PaperCifar10Architecture_IsSelectableByName()
    {
        Assert.Equal(new ScoreModelConfig(3, 32, 128, 50.0, 0.01, 232), ScoreModelFile.Named("paper-cifar10"));
        Assert.Throws<AdpException>(() => ScoreModelFile.Named("nope"));
    }
}
