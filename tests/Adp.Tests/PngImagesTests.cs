using Adp.Data;
using static TorchSharp.torch;

namespace Adp.Tests;

public class PngImagesTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void WriteThenRead_RoundTripsTo8BitPrecision(int channels)
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory("adp-png-").FullName, "x.png");
        var x = rand(new long[] { channels, 7, 5 }, generator: new Generator(1, CPU));
        PngImages.Write(path, x);
        var back = PngImages.Read(path, channels);
        Assert.Equal(new long[] { 1, channels, 7, 5 }, back.shape);
        Assert.True((back[0] - x).abs().max().item<float>() <= 0.5f / 255 + 1e-6);
    }

    [Fact]
    public void Grid_HasTheExpectedSize()
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory("adp-grid-").FullName, "g.png");
        var img = ones(1, 4, 4);
        PngImages.WriteGrid(path, [[img, img, img], [img]], scale: 2);
        var back = PngImages.Read(path, 1);
        // 3 columns of 4 px with 2-px gutters, 2 rows, all ×2.
        Assert.Equal(new long[] { 1, 1, (2 * 4 + 2) * 2, (3 * 4 + 2 * 2) * 2 }, back.shape);
    }
}
