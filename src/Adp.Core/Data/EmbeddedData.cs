using System.IO.Compression;
using static TorchSharp.torch;

namespace Adp.Data;

/// <summary>
/// The first 1,000 test images of MNIST and Fashion-MNIST ship inside the library (IDX, gzipped), so the demo
/// and a fresh install work with no download. They are a partial test split and are reported as such; the
/// loader uses them only when the data directory has no test files for that data set.
/// </summary>
public static class EmbeddedData
{
    public const int Count = 1000;

    private static readonly Dictionary<string, (string ImagesMd5, string LabelsMd5)> ContentMd5 = new()
    {
        ["mnist"] = ("bac4371a484d0b5651e81d99305acb5a", "556860b2f10365a8f7444c1e79c7e9af"),
        ["fashion-mnist"] = ("8a1b719f9f0735f54c6f9ef07f01fe5c", "e27076c4666f2f7b7b7ba19675567282"),
    };

    public static bool Has(DatasetSpec spec) => ContentMd5.ContainsKey(spec.Name);

    private static byte[] Resource(string name)
    {
        using var s = typeof(EmbeddedData).Assembly.GetManifestResourceStream(name)
            ?? throw new InvalidOperationException($"embedded resource {name} missing from the build");
        using var gz = new GZipStream(s, CompressionMode.Decompress);
        using var ms = new MemoryStream();
        gz.CopyTo(ms);
        return ms.ToArray();
    }

    private static (byte[] Images, byte[] Labels) Content(DatasetSpec spec) =>
        (Resource($"{spec.Name}-t10k-images-first1000.idx.gz"), Resource($"{spec.Name}-t10k-labels-first1000.idx.gz"));

    /// <summary>True when the embedded slice's content md5s match the values recorded when it was cut from the
    /// verified official files.</summary>
    public static bool Verify(DatasetSpec spec)
    {
        if (!ContentMd5.TryGetValue(spec.Name, out var md5)) return false;
        var (img, lbl) = Content(spec);
        return RawFiles.Md5(img) == md5.ImagesMd5 && RawFiles.Md5(lbl) == md5.LabelsMd5;
    }

    public static ImageDataset LoadTest(DatasetSpec spec)
    {
        if (!Has(spec)) throw new AdpException($"{spec.Name}: no embedded data");
        var (imgBytes, lblBytes) = Content(spec);
        var images = IdxReader.Parse(imgBytes, 3, $"embedded {spec.Name} test images");
        var labels = IdxReader.Parse(lblBytes, 1, $"embedded {spec.Name} test labels");
        var pixels = tensor(imgBytes.AsSpan(images.Offset, Count * spec.Height * spec.Width).ToArray(), [Count, 1, spec.Height, spec.Width], ScalarType.Byte);
        var lbl = tensor(lblBytes.AsSpan(labels.Offset, Count).ToArray().Select(b => (long)b).ToArray(), [Count], ScalarType.Int64);
        return new ImageDataset(spec, Split.Test, pixels, lbl, isPartialTestSplit: true) { Source = "embedded" };
    }
}
