using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Adp.Cli.Commands;
using Adp.Data;
using Adp.Evaluation;
using Adp.IO;
using Adp.Models;
using Adp.Training;

namespace Adp.Tests.Fuzz;

/// <summary>
/// One test per fault the fuzz runs (or the review done with them) found, each from the failing input or its kind;
/// and the replay of every saved failing input in tests/fuzz-corpus/regressions/&lt;parser&gt;/ through its parser's
/// fuzz target, under the fuzz contract (AdpException with a one-line message or success, bounded time and memory).
/// </summary>
[Collection("fuzz")]
public class FuzzRegressionTests
{
    private const long MiB = 1 << 20;

    public static TheoryData<string, string> SavedInputs()
    {
        var data = new TheoryData<string, string>();
        var root = Path.Combine(TestEnvironment.RepoRoot, "tests", "fuzz-corpus", "regressions");
        foreach (var dir in Directory.GetDirectories(root).Order(StringComparer.Ordinal))
            foreach (var file in Directory.GetFiles(dir).Order(StringComparer.Ordinal))
                data.Add(Path.GetFileName(dir), Path.GetFileName(file));
        return data;
    }

    [Theory]
    [MemberData(nameof(SavedInputs))]
    public void SavedFailingInputIsRefusedOrAccepted(string parser, string file)
    {
        var input = File.ReadAllBytes(Path.Combine(TestEnvironment.RepoRoot, "tests", "fuzz-corpus", "regressions", parser, file));
        FuzzHarness.Guard(parser, input, FuzzTargets.For(parser), 64 * MiB);
    }

    private static AdpException Refused(Action a)
    {
        var e = Assert.Throws<AdpException>(a);
        Assert.DoesNotContain('\n', e.Message);
        Assert.DoesNotContain('\r', e.Message);
        return e;
    }

    private static long Allocated(Action a)
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        try { a(); }
        catch (AdpException) { }
        return GC.GetAllocatedBytesForCurrentThread() - before;
    }

    // ---- one-line messages (fuzz: attack-spec, config-json) -------------------------------------------------------

    [Fact]
    public void AttackSpecKeyWithLineBreakGivesOneLine()
    {
        // The fuzz input: a key holding "\n" and NUL bytes; the message quoted it and spanned two lines.
        var e = Refused(() => EvalCommands.ParseAttack("\n\0\0\0\0\0\0\0e,target}bare,name=clean"));
        Assert.True(e.Message.StartsWith("--attack '\\n\\u0000"), e.Message);
    }

    [Fact]
    public void ConfigSyntaxErrorGivesOneLineWithItsPlace()
    {
        // The fuzz input: a configuration cut inside a string; the reader's message quoted two lines of it.
        var path = Path.Combine(FuzzHarness.TempDir("cfg"), "c.json");
        File.WriteAllText(path, "{\"Dataset\": \"mnist\",\n \"Classifier\": \"a\nb\", \"Score\": \"s\"}");
        var e = Refused(() => RobustConfig.Load(path));
        Assert.Contains("line 2", e.Message);
    }

    [Fact]
    public void EveryAdpExceptionIsOneLine() =>
        Assert.Equal("a\\nb\\tc\\u0001", new AdpException("a\nb\tc\u0001").Message);

    // ---- tar.gz (fuzz: cifar-targz) -------------------------------------------------------------------------------

    [Fact]
    public void TarSizeFieldThatOverflowsIsACorruptedArchive()
    {
        // A size field in base-256 with the high bits set: .NET's TarReader throws OverflowException, which reached
        // the CLI as an internal error.
        var tar = Inputs.Gunzip(SeedCorpus.TarGz([("cifar-10-batches-bin/test_batch.bin", SeedCorpus.CifarBatch(4))], System.Formats.Tar.TarEntryFormat.Gnu));
        tar[124] = 0xff;
        for (int i = 125; i < 136; i++) tar[i] = 0xff;
        var dir = FuzzHarness.TempDir("tar");
        File.WriteAllBytes(Path.Combine(dir, SeedCorpus.CifarSpec.ArchiveFileName!), Inputs.Gzip(tar));
        var e = Refused(() => DatasetLoader.Load(SeedCorpus.CifarSpec, Split.Test, dir).Dispose());
        Assert.Contains("corrupted tar.gz archive", e.Message);
    }

    [Fact]
    public void TarEntryOfTheWrongSizeIsRefusedBeforeItIsRead()
    {
        var dir = FuzzHarness.TempDir("tar");
        File.WriteAllBytes(Path.Combine(dir, SeedCorpus.CifarSpec.ArchiveFileName!),
            SeedCorpus.TarGz([("cifar-10-batches-bin/test_batch.bin", new byte[3073 * 400])]));
        long allocated = Allocated(() => DatasetLoader.Load(SeedCorpus.CifarSpec, Split.Test, dir).Dispose());
        Assert.Contains("400 records, expected 4", Refused(() => DatasetLoader.Load(SeedCorpus.CifarSpec, Split.Test, dir)).Message);
        Assert.True(allocated < 1 * MiB, $"allocated {allocated} bytes");
    }

    // ---- IDX (fuzz: idx allocated 411 MB for a 35-byte gzip file) ----------------------------------------------------

    private static string IdxFile(byte[] content)
    {
        var path = Path.Combine(FuzzHarness.TempDir("idx"), "f.idx.gz");
        File.WriteAllBytes(path, content);
        return path;
    }

    [Fact]
    public void GzippedHeaderClaimingHundredsOfMegabytesAllocatesOnlyWhatArrives()
    {
        var path = Path.Combine(TestEnvironment.RepoRoot, "tests", "fuzz-corpus", "regressions", "idx", "gzip-header-claims-400mb.bin");
        long allocated = Allocated(() => IdxReader.Read(path, 3));
        Assert.Contains("truncated IDX data", Refused(() => IdxReader.Read(path, 3)).Message);
        Assert.True(allocated < 4 * MiB, $"allocated {allocated} bytes");
    }

    [Fact]
    public void RawHeaderClaimingMoreThanTheFileIsRefusedBeforeAllocating()
    {
        var bytes = SeedCorpus.Idx(0x803, [3, 28, 28], _ => 0)[..40];
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4), 2_000_000);  // 1.5 GB claimed, 24 bytes present
        var path = IdxFile(bytes);
        long allocated = Allocated(() => IdxReader.Read(path, 3));
        Assert.Contains("truncated IDX data", Refused(() => IdxReader.Read(path, 3)).Message);
        Assert.True(allocated < 1 * MiB, $"allocated {allocated} bytes");
    }

    [Fact]
    public void DimensionsWhoseProductWrapsAroundAreRefused()
    {
        // 2^30 · 2^30 · 16 = 2^64: the product wrapped to 0 in 64 bits and the empty data section matched it.
        var bytes = SeedCorpus.Idx(0x803, [0, 0, 0], _ => 0);
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4), 1 << 30);
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(8), 1 << 30);
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(12), 16);
        Assert.Contains("more than", Refused(() => IdxReader.Parse(bytes, 3, "wrap.idx")).Message);
        Assert.Contains("more than", Refused(() => IdxReader.Read(IdxFile(bytes), 3)).Message);
    }

    [Fact]
    public void GzipBombBehindAValidHeaderIsNotInflated()
    {
        // A valid 3-record header followed by 256 MB of zeros (256 kB gzipped): the loader reads the 3 records, sees
        // more, and stops.
        var content = new byte[16 + 3 * 784 + (256 << 20)];
        SeedCorpus.Idx(0x803, [3, 28, 28], _ => 1).CopyTo(content, 0);
        var dir = FuzzHarness.TempDir("bomb");
        var folder = Path.Combine(dir, SeedCorpus.IdxSpec.Folder);
        Directory.CreateDirectory(folder);
        File.WriteAllBytes(Path.Combine(folder, "t10k-images-idx3-ubyte.gz"), Inputs.Gzip(content));
        File.WriteAllBytes(Path.Combine(folder, "t10k-labels-idx1-ubyte"), SeedCorpus.Idx(0x801, [3], _ => 1));
        content = null!;
        try
        {
            long allocated = Allocated(() => DatasetLoader.Load(SeedCorpus.IdxSpec, Split.Test, dir).Dispose());
            Assert.Contains("trailing bytes", Refused(() => DatasetLoader.Load(SeedCorpus.IdxSpec, Split.Test, dir)).Message);
            Assert.True(allocated < 4 * MiB, $"allocated {allocated} bytes");
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void HeaderOfAnotherDataSetSizeIsRefusedBeforeTheDataIsRead()
    {
        var dir = FuzzHarness.TempDir("idx-count");
        var folder = Path.Combine(dir, SeedCorpus.IdxSpec.Folder);
        Directory.CreateDirectory(folder);
        File.WriteAllBytes(Path.Combine(folder, "t10k-images-idx3-ubyte"), SeedCorpus.Idx(0x803, [3000, 28, 28], _ => 0));
        File.WriteAllBytes(Path.Combine(folder, "t10k-labels-idx1-ubyte"), SeedCorpus.Idx(0x801, [3], _ => 1));
        long allocated = Allocated(() => DatasetLoader.Load(SeedCorpus.IdxSpec, Split.Test, dir).Dispose());
        Assert.Contains("3000 records, expected 3", Refused(() => DatasetLoader.Load(SeedCorpus.IdxSpec, Split.Test, dir)).Message);
        Assert.True(allocated < 1 * MiB, $"allocated {allocated} bytes");
    }

    // ---- CIFAR-10 batch: size checked before reading ------------------------------------------------------------------

    [Fact]
    public void CifarBatchOfTheWrongSizeIsRefusedBeforeItIsRead()
    {
        var dir = FuzzHarness.TempDir("cifar-size");
        var folder = Path.Combine(dir, SeedCorpus.CifarSpec.Folder);
        Directory.CreateDirectory(folder);
        File.WriteAllBytes(Path.Combine(folder, "test_batch.bin"), new byte[3073 * 500]);
        long allocated = Allocated(() => DatasetLoader.Load(SeedCorpus.CifarSpec, Split.Test, dir).Dispose());
        Assert.Contains("500 records, expected 4", Refused(() => DatasetLoader.Load(SeedCorpus.CifarSpec, Split.Test, dir)).Message);
        Assert.True(allocated < 1 * MiB, $"allocated {allocated} bytes");
    }

    // ---- PNG: size from the header bounded before decoding ------------------------------------------------------------

    [Fact]
    public void PngClaimingHugeDimensionsIsRefusedBeforeDecoding()
    {
        // 20000×20000: SkiaSharp would allocate 1.6 GB of RGBA and adp 4.8 GB of floats for a 100-byte file.
        var png = ParserFuzzTests.FixPngCrcs(SeedCorpus.Png(28, 28, 0, 8));
        BinaryPrimitives.WriteInt32BigEndian(png.AsSpan(16), 20000);
        BinaryPrimitives.WriteInt32BigEndian(png.AsSpan(20), 20000);
        png = ParserFuzzTests.FixPngCrcs(png);
        var path = Path.Combine(FuzzHarness.TempDir("png"), "huge.png");
        File.WriteAllBytes(path, png);
        long allocated = Allocated(() => PngImages.Read(path, 1).Dispose());
        Assert.Contains("20000×20000 pixels", Refused(() => PngImages.Read(path, 1)).Message);
        Assert.True(allocated < 1 * MiB, $"allocated {allocated} bytes");
    }

    // ---- checkpoints: configuration from metadata checked before the network is built ----------------------------------

    private static string WithMetadata(string seed, Action<JsonObject> edit)
    {
        var (header, data) = ParserFuzzTests.SplitSafeTensors(File.ReadAllBytes(Path.Combine(FuzzHarness.CorpusDir("checkpoint"), seed)));
        var root = JsonNode.Parse(header)!.AsObject();
        edit(root["__metadata__"]!.AsObject());
        var path = Path.Combine(FuzzHarness.TempDir("ckpt"), seed);
        File.WriteAllBytes(path, ParserFuzzTests.JoinSafeTensors(root.ToJsonString(), data));
        return path;
    }

    private static void SetConfig(JsonObject meta, string field, JsonNode? value)
    {
        var cfg = JsonNode.Parse(meta["config"]!.GetValue<string>())!.AsObject();
        cfg[field] = value;
        meta["config"] = cfg.ToJsonString();
    }

    [Theory]
    [InlineData("Ngf", 100000)]
    [InlineData("Ngf", 3000)]
    [InlineData("Ngf", 0)]
    [InlineData("Channels", 7)]
    public void ScoreModelConfigurationThatTheWeightsDoNotHoldIsRefusedBeforeBuilding(string field, int value)
    {
        // ngf 3000 would build a 150-GB network (its first layers allocated before the missing weights were noticed).
        var path = WithMetadata("score-ngf2.ckpt", m => SetConfig(m, field, value));
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var e = Refused(() => ScoreModelFile.Load(path));
        Assert.Contains(path, e.Message);
        Assert.True(sw.Elapsed.TotalSeconds < 5, $"took {sw.Elapsed}");
    }

    [Theory]
    [InlineData("Depth", 100000)]   // 16,666 blocks per stage were built before the weights were compared
    [InlineData("Width", 100000)]
    [InlineData("Channels", 0)]     // libtorch refused the layer: an internal error
    [InlineData("NumClasses", -1)]
    [InlineData("Dropout", 2)]
    [InlineData("Architecture", 9)]
    [InlineData("Depth", 4)]        // built, then every forward failed inside libtorch
    public void ClassifierConfigurationThatTheWeightsDoNotHoldIsRefusedBeforeBuilding(string field, int value)
    {
        var path = WithMetadata("classifier-wrn10-1-stripped.ckpt", m => SetConfig(m, field, value));
        var sw = System.Diagnostics.Stopwatch.StartNew();
        Assert.Contains(path, Refused(() => ClassifierFile.Load(path)).Message);
        Assert.True(sw.Elapsed.TotalSeconds < 5, $"took {sw.Elapsed}");
    }

    [Fact]
    public void ClassifierInputNormalizationOfTheWrongLengthIsRefused()
    {
        var path = WithMetadata("classifier-resnet10-w1.ckpt", m => SetConfig(m, "Std", new JsonArray(0.2, 0.2)));
        Assert.Contains("std", Refused(() => ClassifierFile.Load(path)).Message);
    }

    [Theory]
    [InlineData("training", "{\"Dataset\":")]
    [InlineData("training", "null")]
    [InlineData("training", "{\"Dataset\":\"mnist\",\"Model\":{\"Channels\":1,\"ImageSize\":28,\"Ngf\":2},\"BatchSize\":0}")]
    public void TrainingOptionsThatAreNotValidAreRefused(string key, string value)
    {
        // The first was a JsonException and the second a null model (NullReferenceException at the resume).
        var path = WithMetadata("score-ngf2.ckpt", m => m[key] = value);
        Assert.Contains("training", Refused(() => ScoreTrainer.ReadOptions(path)).Message);
    }

    [Fact]
    public void ResumeFromACheckpointWithAnIterationThatIsNotANumberIsRefused()
    {
        // long.Parse threw FormatException at `adp train classifier --resume`.
        var path = WithMetadata("classifier-resnet10-w1.ckpt", m => m["iteration"] = "x");
        var opts = ClassifierTrainer.ReadOptions(path) with { TrainImages = 8, ValidationImages = 0, Epochs = 1 };
        using var data = new ImageDataset(DatasetRegistry.Cifar10, Split.Train,
            TorchSharp.torch.zeros([8, 3, 32, 32], TorchSharp.torch.ScalarType.Byte), TorchSharp.torch.zeros([8], TorchSharp.torch.ScalarType.Int64));
        var m = Refused(() => new ClassifierTrainer(opts, data, path).Run(resume: true)).Message;
        Assert.True(m.Contains("'iteration'"), m);
    }

    [Theory]
    [InlineData(10)]    // what TorchSharp's reader threw on it reached the CLI as an internal error
    [InlineData(5841)]
    public void OptimizerStateThatTorchSharpCannotReadIsRefused(int length)
    {
        var src = Path.Combine(FuzzHarness.CorpusDir("checkpoint"), "classifier-resnet10-w1.ckpt");
        using var f = SafeTensors.Load(src);
        var tensors = f.Tensors.ToDictionary(kv => kv.Key, kv => kv.Value);
        using TorchSharp.Scalar seven = 7;
        tensors[Checkpoint.OptimizerTensor] = TorchSharp.torch.full([length], seven, TorchSharp.torch.ScalarType.Byte);
        var path = Path.Combine(FuzzHarness.TempDir("opt"), "c.ckpt");
        SafeTensors.Save(path, tensors, f.Metadata);
        var opts = ClassifierTrainer.ReadOptions(path) with { TrainImages = 8, ValidationImages = 0 };
        using var data = new ImageDataset(DatasetRegistry.Cifar10, Split.Train,
            TorchSharp.torch.zeros([8, 3, 32, 32], TorchSharp.torch.ScalarType.Byte), TorchSharp.torch.zeros([8], TorchSharp.torch.ScalarType.Int64));
        var m = Refused(() => new ClassifierTrainer(opts, data, path).Run(resume: true)).Message;
        Assert.True(m.Contains("optimizer state"), m);
    }

    // ---- attack specs and configurations: values the validators let through -------------------------------------------

    [Theory]
    [InlineData("kind=1")]           // Enum.TryParse took "1" as Fgsm
    [InlineData("target=99")]        // an undefined target, refused only when the attack ran
    [InlineData("eps=NaN")]          // NaN passed "eps ≥ 0"
    [InlineData("eps=Infinity")]
    [InlineData("step=-Infinity")]
    [InlineData("eps=1e400")]
    public void AttackSpecValuesThatAreNotValidAreRefused(string spec) =>
        Refused(() => FuzzTargets.UseAttackSpec(spec));

    [Theory]
    [InlineData("\"Attacks\": null")]                   // ArgumentNullException in AllAttacks
    [InlineData("\"Seeds\": null")]                     // NullReferenceException in Validate
    [InlineData("\"Purifier\": null")]
    [InlineData("\"Attacks\": [null]")]
    [InlineData("\"Rules\": [7]")]
    [InlineData("\"Attacks\": [{\"Kind\": 9}]")]
    [InlineData("\"Attacks\": [{\"IterationsCurve\": null}]")]
    public void ConfigurationNullsAndUndefinedValuesAreRefused(string field)
    {
        var path = Path.Combine(FuzzHarness.TempDir("cfg"), "c.json");
        File.WriteAllText(path, $"{{\"Classifier\": \"c\", \"Score\": \"s\", {field}}}");
        Refused(() => FuzzTargets.UseConfig(path));
    }

    private static void AssertCliError((int Code, string Out, string Err) r, params string[] mustContain)
    {
        Assert.True(r.Code == 2, $"exit code {r.Code}; stderr: {r.Err}");
        Assert.Single(r.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        foreach (var m in mustContain) Assert.Contains(m, r.Err);
    }

    [Fact]
    public void CliSaysOneLineAndExitsTwoForAConfigCutInsideAString()
    {
        var dir = FuzzHarness.TempDir("cli-cfg");
        var path = Path.Combine(dir, "c.json");
        File.WriteAllText(path, "{\"Classifier\": \"a\nb\",\n \"Score\": \"s\"}");
        AssertCliError(CliErrorTests.RunAdp("eval", "robust", "--config", path, "--out", Path.Combine(dir, "out")), path, "line 1");
    }

    [Fact]
    public void CliSaysOneLineAndExitsTwoForACheckpointClaimingAHugeNetwork()
    {
        var path = WithMetadata("score-ngf2.ckpt", m => SetConfig(m, "Ngf", 3000));
        AssertCliError(CliErrorTests.RunAdp("export", "--score", path, "--out", path + ".safetensors"), path, "weights");
    }

    [Fact]
    public void CliSaysOneLineAndExitsTwoForABadAttackSpec()
    {
        var (code, _, err) = CliErrorTests.RunAdp("eval", "robust", "--classifier", "c", "--score", "s", "--out",
            FuzzHarness.TempDir("cli"), "--attack", "kind=pgd,eps=NaN");
        Assert.Equal(2, code);
        Assert.Single(err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains("eps", err);
    }
}
