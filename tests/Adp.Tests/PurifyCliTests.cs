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
        var (code, stdout, err) = CliErrorTests.RunAdp("--threads", "1", "purify", "--score", CliErrorTests.ScoreCheckpoint(), "--input", png,
            "--out", outDir, "--purifier", kind, "--steps", "3", "--langevin-steps", "5");
        Assert.True(code == 0, $"purify --purifier {kind}: exit {code}: {err}");
        Assert.True(File.Exists(Path.Combine(outDir, "digit.purified.png")) && File.Exists(Path.Combine(outDir, "digit.grid.png")), stdout);
    }
}
