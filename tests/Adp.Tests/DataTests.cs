using System.IO.Compression;
using Adp.Data;
using Adp.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Adp.Tests;

public class DataTests
{
    private static string DataDir => TestEnvironment.RequireDataDir();

    [DataFact]
    public void Mnist_KnownLabelsAndFirstImage()
    {
        using var train = DatasetLoader.Load("mnist", Split.Train, DataDir);
        using var test = DatasetLoader.Load("mnist", Split.Test, DataDir);
        Assert.Equal(60000, train.Count);
        Assert.Equal(10000, test.Count);
        Assert.Equal(5, train.Labels[0].item<long>());
        Assert.Equal(new long[] { 7, 2, 1, 0, 4 }, test.Labels.narrow(0, 0, 5).data<long>().ToArray());

        // Pixel sum of the first test image, computed independently from the raw IDX bytes.
        using var gz = new GZipStream(File.OpenRead(Path.Combine(DataDir, "mnist", "t10k-images-idx3-ubyte.gz")), CompressionMode.Decompress);
        var raw = new byte[16 + 784];
        gz.ReadExactly(raw);
        long byteSum = raw.Skip(16).Sum(b => (long)b);
        Assert.Equal(18454, byteSum);  // the first MNIST test digit (a 7); value computed with Python's gzip module
        var img = test.Images(0, 1);
        Assert.Equal(new long[] { 1, 1, 28, 28 }, img.shape);
        Assert.Equal(byteSum / 255.0, img.sum().item<float>(), 2);
    }

    [DataFact]
    public void Cifar10_KnownLabels_PartialTestSplitIsFlagged()
    {
        using var train = DatasetLoader.Load("cifar-10", Split.Train, DataDir);
        using var test = DatasetLoader.Load("cifar-10", Split.Test, DataDir);
        Assert.Equal(50000, train.Count);
        Assert.Equal(new long[] { 6, 9, 9, 4, 1 }, train.Labels.narrow(0, 0, 5).data<long>().ToArray());
        Assert.Equal(new long[] { 3, 8, 8, 0, 6 }, test.Labels.narrow(0, 0, 5).data<long>().ToArray());
        Assert.True(test.IsPartialTestSplit);
        Assert.Contains("partial", test.Description);
        Assert.Equal(1000, test.Count);
        // First training image starts with red values 59, 43, 50 (record layout: R plane, G plane, B plane).
        var img = train.Images(0, 1);
        Assert.Equal(new long[] { 1, 3, 32, 32 }, img.shape);
        Assert.Equal(59 / 255f, img[0, 0, 0, 0].item<float>(), 5);
        Assert.Equal(43 / 255f, img[0, 0, 0, 1].item<float>(), 5);
    }

    [DataFact]
    public void Images_AreFloatInUnitInterval()
    {
        foreach (var name in new[] { "mnist", "fashion-mnist", "cifar-10" })
        {
            using var test = DatasetLoader.Load(name, Split.Test, DataDir);
            var x = test.Images(0, 500);
            Assert.Equal(ScalarType.Float32, x.dtype);
            Assert.True(x.min().item<float>() >= 0f && x.max().item<float>() <= 1f, name);
            Assert.True(x.max().item<float>() > 0.99f, name);
            Assert.Equal(ScalarType.Int64, test.Labels.dtype);
        }
    }

    [DataFact]
    public void Verify_ReportsExpectedCounts()
    {
        var m = DataVerifier.Verify(DatasetRegistry.Mnist, DataDir);
        var f = DataVerifier.Verify(DatasetRegistry.FashionMnist, DataDir);
        var c = DataVerifier.Verify(DatasetRegistry.Cifar10, DataDir);
        Assert.True(m.Verified && f.Verified && c.Verified);
        Assert.Equal((60000, 10000), (m.TrainRecords, m.TestRecords));
        Assert.Equal((60000, 10000), (f.TrainRecords, f.TestRecords));
        Assert.Equal((50000, 1000, true), (c.TrainRecords, c.TestRecords, c.PartialTest));
    }

    [Fact]
    public void CifarTarGz_IsReadLikeTheExtractedFolder()
    {
        // Build a miniature "official" archive: two records in data_batch_1..5 would not match the registry
        // counts, so we check the archive reader on one entry directly.
        var dir = Directory.CreateTempSubdirectory("adp-tar-").FullName;
        var archive = Path.Combine(dir, "cifar-10-binary.tar.gz");
        var record = new byte[3073];
        record[0] = 7;
        record[1] = 200;
        using (var fs = File.Create(archive))
        using (var gz = new GZipStream(fs, CompressionLevel.Fastest))
        using (var tar = new System.Formats.Tar.TarWriter(gz))
        {
            var e = new System.Formats.Tar.PaxTarEntry(System.Formats.Tar.TarEntryType.RegularFile, "cifar-10-batches-bin/data_batch_1.bin")
            { DataStream = new MemoryStream(record) };
            tar.WriteEntry(e);
        }
        var got = DatasetLoader.ReadTarGzEntry(archive, "cifar-10-batches-bin/data_batch_1.bin");
        Assert.NotNull(got);
        Assert.Equal(record, got);
        Assert.Null(DatasetLoader.ReadTarGzEntry(archive, "cifar-10-batches-bin/test_batch.bin"));
    }

    [Fact]
    public void BatchSchedule_IsAPermutationPerEpoch_AndSeeded()
    {
        var a = new Adp.Training.BatchSchedule(10, 5, seed: 3);
        var b = new Adp.Training.BatchSchedule(10, 5, seed: 3);
        var epoch0 = a.Indices(0).Concat(a.Indices(1)).OrderBy(i => i).ToArray();
        Assert.Equal(Enumerable.Range(0, 10).Select(i => (long)i), epoch0);
        Assert.Equal(a.Indices(7), b.Indices(7));
        Assert.NotEqual(new Adp.Training.BatchSchedule(10, 5, seed: 4).Indices(0), a.Indices(0));
    }

    [Fact]
    public void Augmentation_FlipAndCrop_KeepShapeAndContent()
    {
        using TorchSharp.Scalar count = 2 * 1 * 4 * 4;
        var x = arange(RootedScalars.IntZero, count, RootedScalars.IntOne, dtype: ScalarType.Float32).reshape(2, 1, 4, 4).Over(32f);
        using var g = new Generator(1, CPU);
        var flipped = new Augmentation(HorizontalFlip: true).Apply(x, g);
        for (int i = 0; i < 2; i++)
            Assert.True(flipped[i].equal(x[i]).all().item<bool>() || flipped[i].equal(x[i].flip(2)).all().item<bool>());
        var cropped = new Augmentation(CropPadding: 1).Apply(x, g);
        Assert.Equal(x.shape, cropped.shape);
        // A crop with padding 1 keeps at least a 3×3 block of the original image.
        Assert.True(cropped.count_nonzero().item<long>() >= 2 * 9 - 1);
    }
}
