using static TorchSharp.torch;

namespace Adp.Tests;

/// <summary>`adp purify` with every purifier kind: the Langevin purifier crashed on its step-size column (its step sizes
/// hold one row, not one per step).</summary>
public class PurifyCliTests
{
    [Theory]
    [InlineData("adp")]
    [InlineData("gated")]
    [InlineData("reinject")]
    [InlineData("tweedie")]
    [InlineData("langevin")]
    public void Purify_EveryPurifierKind_WritesTheImages(string kind)
    {
        var dir = Directory.CreateTempSubdirectory("adp-purify-kind-").FullName;
        var png = Path.Combine(dir, "digit.png");
        Adp.Data.PngImages.Write(png, rand(new long[] { 1, 28, 28 }, generator: new TorchSharp.torch.Generator(7, CPU)));
        var outDir = Path.Combine(dir, "out");
        string[] langevin = kind == "langevin" ? ["--langevin-steps", "5"] : [];   // a variant's option is refused for the others
        var (code, stdout, err) = CliErrorTests.RunAdp(["--threads", "1", "purify", "--score", CliErrorTests.ScoreCheckpoint(), "--input", png,
            "--out", outDir, "--purifier", kind, "--steps", "3", .. langevin]);
        Assert.True(code == 0, $"purify --purifier {kind}: exit {code}: {err}");
        Assert.True(File.Exists(Path.Combine(outDir, "digit.purified.png")) && File.Exists(Path.Combine(outDir, "digit.grid.png")), stdout);
    }

    [Theory]
    [InlineData("tweedie")]
    [InlineData("langevin")]
    [InlineData("reinject")]
    public void Classify_WithTheVariants_GivesAFiniteConfidence(string kind)
    {
        var dir = Directory.CreateTempSubdirectory("adp-classify-kind-").FullName;
        var png = Path.Combine(dir, "digit.png");
        Adp.Data.PngImages.Write(png, rand(new long[] { 1, 28, 28 }, generator: new TorchSharp.torch.Generator(8, CPU)));
        string[] langevin = kind == "langevin" ? ["--langevin-steps", "3"] : [];
        var (code, stdout, err) = CliErrorTests.RunAdp(["--threads", "1", "classify", "--classifier", TestEnvironment.Model("mnist-smallcnn.ckpt"),
            "--score", CliErrorTests.ScoreCheckpoint(), "--input", png, "--runs", "2", "--purifier", kind, "--steps", "2", .. langevin]);
        Assert.True(code == 0, $"classify --purifier {kind}: exit {code}: {err}");
        Assert.Matches(@"label=\d confidence=[0-9.]+", stdout);
    }

    [Fact]
    public void Langevin_BadLevelOrSteps_IsAOneLineError()
    {
        var dir = Directory.CreateTempSubdirectory("adp-langevin-bad-").FullName;
        var png = Path.Combine(dir, "digit.png");
        Adp.Data.PngImages.Write(png, rand(new long[] { 1, 28, 28 }));
        foreach (var (option, value) in new[] { ("--langevin-level", "0"), ("--langevin-steps", "0") })
        {
            var (code, _, err) = CliErrorTests.RunAdp("--threads", "1", "purify", "--score", CliErrorTests.ScoreCheckpoint(), "--input", png,
                "--out", Path.Combine(dir, "out"), "--purifier", "langevin", option, value);
            Assert.Equal(2, code);
            Assert.Contains(option, err);
            Assert.Single(err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        }
    }

    /// <summary>A variant's parameter given for another purifier is refused with one line naming it (it used to be accepted and
    /// ignored: `--reinject 0.3` without `--purifier reinject` purified with plain ADP).</summary>
    [Theory]
    [InlineData("--reinject", "0.3", "adp")]
    [InlineData("--gate-sigma", "0.2", "tweedie")]
    [InlineData("--langevin-steps", "10", "reinject")]
    public void VariantOption_ForAnotherPurifier_IsAOneLineError(string option, string value, string kind)
    {
        var dir = Directory.CreateTempSubdirectory("adp-variant-option-").FullName;
        var png = Path.Combine(dir, "digit.png");
        Adp.Data.PngImages.Write(png, rand(new long[] { 1, 28, 28 }));
        var (code, _, err) = CliErrorTests.RunAdp("--threads", "1", "purify", "--score", CliErrorTests.ScoreCheckpoint(), "--input", png,
            "--out", Path.Combine(dir, "out"), "--purifier", kind, option, value);
        Assert.Equal(2, code);
        Assert.StartsWith($"adp: error: {option}: applies to --purifier", err);
        Assert.Single(err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }
}
