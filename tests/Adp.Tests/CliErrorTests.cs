using System.Diagnostics;
using System.IO.Compression;

namespace Adp.Tests;

/// <summary>Bad input through the real `adp` executable: one line on stderr naming the problem, exit code 2,
/// no stack trace.</summary>
public class CliErrorTests
{
    internal static (int Code, string Out, string Err) RunAdp(params string[] args)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "adp.dll");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true };
        psi.ArgumentList.Add(dll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment.Remove("ADP_DATA_DIR");
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, stdout.Result, stderr);
    }

    private static void AssertOneLineError(string[] args, params string[] mustContain)
    {
        var (code, _, err) = RunAdp(args);
        Assert.Equal(2, code);
        var lines = err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, $"expected one line on stderr, got:\n{err}");
        Assert.DoesNotContain("   at ", err);
        foreach (var s in mustContain) Assert.Contains(s, err);
    }

    /// <summary>A data folder with the four MNIST files written from the given label bytes and images.</summary>
    private static string FakeMnist(Action<string>? tamper = null)
    {
        var dir = Directory.CreateTempSubdirectory("adp-bad-").FullName;
        var m = Path.Combine(dir, "mnist");
        Directory.CreateDirectory(m);
        WriteIdx(Path.Combine(m, "train-images-idx3-ubyte"), 0x803, [60000, 28, 28]);
        WriteIdx(Path.Combine(m, "train-labels-idx1-ubyte"), 0x801, [60000]);
        WriteIdx(Path.Combine(m, "t10k-images-idx3-ubyte"), 0x803, [10000, 28, 28]);
        WriteIdx(Path.Combine(m, "t10k-labels-idx1-ubyte"), 0x801, [10000]);
        tamper?.Invoke(m);
        return dir;
    }

    internal static void WriteIdx(string path, int magic, int[] dims, int? dataBytes = null)
    {
        using var fs = File.Create(path);
        void Be(int v) { fs.Write([(byte)(v >> 24), (byte)(v >> 16), (byte)(v >> 8), (byte)v]); }
        Be(magic);
        foreach (var d in dims) Be(d);
        fs.Write(new byte[dataBytes ?? dims.Aggregate(1, (a, b) => a * b)]);
    }

    [Fact]
    public void AdversarialTrainingOptions_AreCheckedOnlyWhereTheyApply()
    {
        var data = FakeMnist();
        var dir = Directory.CreateTempSubdirectory("adp-advopt-").FullName;
        string[] Train(string name, params string[] extra) =>
            ["--threads", "1", "train", "classifier", "--data-dir", data, "--train-images", "96", "--validation-images", "32", "--epochs", "1",
             "--batch-size", "32", "--out", Path.Combine(dir, name), .. extra];
        // Without adversarial training the PGD-validation size (default 500) is not checked against 32 validation images.
        var (code, _, err) = RunAdp(Train("plain.ckpt"));
        Assert.True(code == 0, err);
        AssertOneLineError(Train("a.ckpt", "--adv-eps-ramp", "1"), "--adv-eps-ramp", "--adv-eps");
        AssertOneLineError(Train("b.ckpt", "--adv-eps", "0.1"), "--adv-val-images", "0…32");
        AssertOneLineError(Train("c.ckpt", "--adv-eps", "0.1", "--adv-val-images", "16", "--adv-eps-ramp", "2"), "--adv-eps-ramp", "0…1");
    }

    [Fact]
    public void MissingFolder()
    {
        var missing = Path.Combine(Path.GetTempPath(), "adp-no-such-folder-" + Guid.NewGuid());
        AssertOneLineError(["data", "verify", "--data-dir", missing], missing, "not found");
    }

    [Fact]
    public void UnknownDatasetName() =>
        AssertOneLineError(["data", "verify", "svhn", "--data-dir", Path.GetTempPath()], "unknown data set 'svhn'", "mnist");

    [Fact]
    public void NonNumericOption() =>
        AssertOneLineError(["eval", "denoise", "--score", "x", "--images", "many"], "many", "--images");

    [Fact]
    public void WrongMd5_NamesFileAndExpectedMd5()
    {
        var dir = FakeMnist();
        AssertOneLineError(["data", "verify", "mnist", "--data-dir", dir], "-idx", "expected f68b3c2dcbeaaa9fbdd348bbdeb94873");
    }

    [Fact]
    public void WrongMagicNumber()
    {
        var dir = FakeMnist(m => WriteIdx(Path.Combine(m, "t10k-labels-idx1-ubyte"), 0x803, [10000]));
        AssertOneLineError(["eval", "denoise", "--score", ScoreCheckpoint(), "--data-dir", dir, "--images", "5"],
            "t10k-labels-idx1-ubyte", "wrong magic number 0x00000803, expected 0x00000801");
    }

    [Fact]
    public void TruncatedRawFile()
    {
        var dir = FakeMnist(m => WriteIdx(Path.Combine(m, "t10k-images-idx3-ubyte"), 0x803, [10000, 28, 28], dataBytes: 1000));
        AssertOneLineError(["eval", "denoise", "--score", ScoreCheckpoint(), "--data-dir", dir, "--images", "5"],
            "t10k-images-idx3-ubyte", "truncated");
    }

    [Fact]
    public void TruncatedGzipFile()
    {
        var dir = FakeMnist(m =>
        {
            var raw = Path.Combine(m, "t10k-images-idx3-ubyte");
            using (var fs = File.Create(raw + ".gz"))
            using (var gz = new GZipStream(fs, CompressionLevel.Fastest))
                gz.Write(File.ReadAllBytes(raw));
            File.Delete(raw);
            var bytes = File.ReadAllBytes(raw + ".gz");
            File.WriteAllBytes(raw + ".gz", bytes[..(bytes.Length / 2)]);
        });
        AssertOneLineError(["eval", "denoise", "--score", ScoreCheckpoint(), "--data-dir", dir, "--images", "5"],
            "t10k-images-idx3-ubyte.gz", "truncated");
    }

    [Fact]
    public void RecordCountMismatch()
    {
        var dir = FakeMnist(m =>
        {
            WriteIdx(Path.Combine(m, "t10k-images-idx3-ubyte"), 0x803, [9999, 28, 28]);
        });
        AssertOneLineError(["eval", "denoise", "--score", ScoreCheckpoint(), "--data-dir", dir, "--images", "5"],
            "t10k-images-idx3-ubyte", "9999 records, expected 10000");
    }

    [Fact]
    public void CorruptedCifarBatch_IsReportedByVerify()
    {
        var dir = Directory.CreateTempSubdirectory("adp-badcifar-").FullName;
        var c = Path.Combine(dir, "cifar-10-batches-bin");
        Directory.CreateDirectory(c);
        File.WriteAllBytes(Path.Combine(c, "data_batch_1.bin"), new byte[3073 * 10]);
        AssertOneLineError(["data", "verify", "cifar-10", "--data-dir", dir], "data_batch_1.bin", "expected 5dd7e06a14cb22eb9f671a540d1b7c25");
    }

    private static string? _score;

    /// <summary>A tiny untrained MNIST score checkpoint (the data errors are raised before it is used).</summary>
    internal static string ScoreCheckpoint()
    {
        if (_score is not null) return _score;
        var path = Path.Combine(Directory.CreateTempSubdirectory("adp-ckpt-").FullName, "tiny.ckpt");
        using var net = new Adp.Models.Ncsnv2(new Adp.Models.ScoreModelConfig(1, 28, 4, 1, 0.01, 3));
        Adp.IO.Checkpoint.Save(path, Adp.Models.ScoreModelFile.Kind, [("model.", net), ("ema.", net)], new Dictionary<string, string>
        {
            ["config"] = System.Text.Json.JsonSerializer.Serialize(net.Config), ["dataset"] = "mnist", ["iteration"] = "0",
        });
        return _score = path;
    }
}
