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
        // An option the purifier does not read is refused: steps for those that step, K for Langevin.
        string[] own = kind == "langevin" ? ["--langevin-steps", "5"] : kind == "tweedie" ? [] : ["--steps", "3"];
        var (code, stdout, err) = CliErrorTests.RunAdp(["--threads", "1", "purify", "--score", CliErrorTests.ScoreCheckpoint(), "--input", png,
            "--out", outDir, "--purifier", kind, .. own]);
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
        string[] own = kind == "langevin" ? ["--langevin-steps", "3"] : kind == "tweedie" ? [] : ["--steps", "2"];
        var (code, stdout, err) = CliErrorTests.RunAdp(["--threads", "1", "classify", "--classifier", TestEnvironment.Model("mnist-smallcnn.ckpt"),
            "--score", CliErrorTests.ScoreCheckpoint(), "--input", png, "--runs", "2", "--purifier", kind, .. own]);
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

    /// <summary>An option the chosen purifier does not read is refused with one line naming it (it used to be accepted and
    /// ignored: `--reinject 0.3` without `--purifier reinject` purified with plain ADP, `--steps` did nothing to Tweedie).</summary>
    [Theory]
    [InlineData("--reinject", "0.3", "adp")]
    [InlineData("--gate-sigma", "0.2", "tweedie")]
    [InlineData("--langevin-steps", "10", "reinject")]
    [InlineData("--steps", "10", "tweedie", "--purifier tweedie reads σ only")]
    [InlineData("--tau", "0.01", "langevin", "--purifier langevin reads σ only")]
    [InlineData("--sigma", "0.3", "reinject", "takes its σs from --reinject")]
    public void VariantOption_ForAnotherPurifier_IsAOneLineError(string option, string value, string kind, string says = "applies to --purifier")
    {
        var dir = Directory.CreateTempSubdirectory("adp-variant-option-").FullName;
        var png = Path.Combine(dir, "digit.png");
        Adp.Data.PngImages.Write(png, rand(new long[] { 1, 28, 28 }));
        var (code, _, err) = CliErrorTests.RunAdp("--threads", "1", "purify", "--score", CliErrorTests.ScoreCheckpoint(), "--input", png,
            "--out", Path.Combine(dir, "out"), "--purifier", kind, option, value);
        Assert.Equal(2, code);
        Assert.StartsWith($"adp: error: {option}: ", err);
        Assert.Contains(says, err);
        Assert.Single(err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    /// <summary>A preset names its purifier too: the MNIST checkpoint's recommended preset (`mnist`) runs re-injection
    /// σ 0.15 → 0.15, unless --purifier or another --preset says otherwise; an ADP flag re-injection does not read is one
    /// line naming the preset; `eval snapshots`, which measures ADP itself, refuses a variant's preset.</summary>
    [Fact]
    public void Preset_ChoosesItsVariant_UnlessAnotherPurifierIsGiven()
    {
        var dir = Directory.CreateTempSubdirectory("adp-preset-variant-").FullName;
        var png = Path.Combine(dir, "digit.png");
        Adp.Data.PngImages.Write(png, rand(new long[] { 1, 28, 28 }, generator: new TorchSharp.torch.Generator(8, CPU)));
        (int Code, string Out, string Err) Classify(params string[] extra) => CliErrorTests.RunAdp(["--threads", "1", "classify", "--classifier",
            TestEnvironment.Model("mnist-smallcnn.ckpt"), "--score", TestEnvironment.Model("mnist-score.ckpt"), "--input", png, "--runs", "1",
            "--steps", "1", .. extra]);
        var preset = Classify();
        Assert.True(preset.Code == 0, preset.Err);
        Assert.Contains("re-injection σ = 0.15 → 0.15", preset.Out);
        foreach (var other in new[] { new[] { "--purifier", "adp" }, ["--preset", "paper"] })
        {
            var adp = Classify(other);
            Assert.True(adp.Code == 0, adp.Err);
            Assert.DoesNotContain("re-injection", adp.Out);
            Assert.Contains("ADP σ=", adp.Out);
        }
        var sigma = Classify("--sigma", "0.2");
        Assert.Equal(2, sigma.Code);
        Assert.Equal("adp: error: --sigma: --purifier reinject takes its σs from --reinject (the preset mnist's purifier; --purifier adp for ADP " +
                     "itself)", sigma.Err.Trim());
        var snapshots = CliErrorTests.RunAdp("eval", "snapshots", "x.ckpt", "--classifier", "c.ckpt", "--out", "never", "--preset", "mnist");
        Assert.Equal(2, snapshots.Code);
        Assert.StartsWith("adp: error: --preset mnist: runs reinject sigmas=0.15/0.15, and eval snapshots evaluates the ADP purifier", snapshots.Err);
    }
}
