using System.Buffers.Binary;
using System.Text;
using Adp.Cli.Commands;
using Adp.Data;
using Adp.Evaluation;
using Adp.IO;
using Adp.Models;
using Adp.Training;
using CsCheck;
using Xunit.Abstractions;

namespace Adp.Tests.Fuzz;

/// <summary>
/// The bounded fuzz run of every parser (about 1,000 inputs each; see <see cref="FuzzHarness"/> for the contract and
/// the settings, and scripts/fuzz/long-run.sh for long runs). Inputs are the committed seeds of tests/fuzz-corpus/
/// mutated (bit flips, bytes and header integers set to extreme values, truncations, deletions, insertions,
/// repeats, splices; JSON values replaced by extremes and wrong types) and inputs made from scratch. Files are loaded
/// through the same entry points the CLI uses (the data set loader, checkpoint and PNG readers, RobustConfig.Load,
/// the --attack parser).
/// </summary>
[Collection("fuzz")]
public class ParserFuzzTests(ITestOutputHelper output)
{
    private const long MiB = 1 << 20;

    private static Gen<byte[]> Mix(params (int Weight, Gen<byte[]> Gen)[] gens) =>
        Gen.Frequency(gens.Select(g => (g.Weight, (IGen<byte[]>)g.Gen)).ToArray());

    private static byte[][] Select(byte[][] seeds, Func<byte[], bool> keep) => seeds.Where(keep).ToArray();
    private static bool IsGzip(byte[] b) => b.Length > 2 && b[0] == 0x1f && b[1] == 0x8b;

    // ---- IDX (raw and gzip) -------------------------------------------------------------------------------------

    /// <summary>An IDX header from scratch: a magic (valid or not), 1–4 dimensions of extreme sizes, a little data.</summary>
    private static readonly Gen<byte[]> IdxFromScratch = Gen.Select(
        Gen.OneOf(0x801, 0x803, 0x802, 0x804, 0x0d03, 0x0c03, -1),
        Gen.OneOf(0, 1, 2, 3, 28, 10000, 60000, int.MaxValue, -1, int.MinValue, 1 << 16, 1 << 20).Array[1, 4],
        Gen.Int[0, 3000], Gen.Bool,
        (magic, dims, data, gz) =>
        {
            var b = new byte[4 + 4 * dims.Length + data];
            BinaryPrimitives.WriteInt32BigEndian(b, magic);
            for (int i = 0; i < dims.Length; i++) BinaryPrimitives.WriteInt32BigEndian(b.AsSpan(4 + 4 * i), dims[i]);
            return gz ? Inputs.Gzip(b) : b;
        });

    [Fact]
    public void Idx()
    {
        var seeds = FuzzHarness.Corpus("idx");
        var raw = Select(seeds, b => !IsGzip(b));
        var gen = Mix((4, Inputs.Mutated(seeds, 16)), (3, Inputs.Mutated(raw, 16, Inputs.Gzip)), (2, IdxFromScratch),
            (1, Inputs.RandomBytes));
        FuzzHarness.Run("idx", gen, FuzzTargets.Idx(), 64 * MiB, output.WriteLine);
    }


    // ---- CIFAR-10 binary batches and the official tar.gz --------------------------------------------------------

    [Fact]
    public void CifarBinary()
    {
        var seeds = FuzzHarness.Corpus("cifar-bin");
        var gen = Mix((8, Inputs.Mutated(seeds, 3073)), (1, Inputs.RandomBytes),
            (1, Gen.Int[0, 5].Select(n => SeedCorpus.CifarBatch(n))));
        FuzzHarness.Run("cifar-bin", gen, FuzzTargets.CifarBinary(), 64 * MiB, output.WriteLine);
    }

    [Fact]
    public void CifarTarGz()
    {
        var seeds = FuzzHarness.Corpus("cifar-targz");
        var tars = seeds.Select(Inputs.Gunzip).ToArray();
        var gen = Mix((3, Inputs.Mutated(seeds, 64)), (6, Inputs.Mutated(tars, 1536, Inputs.Gzip)),
            (1, Inputs.RandomBytes.Select(Inputs.Gzip)));
        FuzzHarness.Run("cifar-targz", gen, FuzzTargets.CifarTarGz(), 64 * MiB, output.WriteLine);
    }

    // ---- safetensors ----------------------------------------------------------------------------------------------

    /// <summary>A safetensors file whose JSON header was edited as JSON (the length prefix kept right), so that the
    /// edits reach the format's rules instead of stopping at the length check.</summary>
    private static Gen<byte[]> HeaderJsonMutated(byte[][] seeds) =>
        Gen.Select(Gen.Int[0, seeds.Length - 1], Inputs.JsonEdit.Array[1, 3], (i, edits) =>
        {
            var (header, data) = SplitSafeTensors(seeds[i]);
            foreach (var (p, v, a) in edits) header = Inputs.MutateJson(header, p, v, a);
            return JoinSafeTensors(header, data);
        });

    /// <summary>A checkpoint whose metadata values (only) were edited, 1–3 times (see <see cref="EditMetadata"/>).</summary>
    private static Gen<byte[]> MetadataMutated(byte[][] seeds) =>
        Gen.Select(Gen.Int[0, seeds.Length - 1], Gen.Int[0, 1_000_000].Array[1, 3], (i, edits) =>
        {
            var (header, data) = SplitSafeTensors(seeds[i]);
            foreach (var m in edits) header = EditMetadata(header, m);
            return JoinSafeTensors(header, data);
        });

    internal static (string Header, byte[] Data) SplitSafeTensors(byte[] file)
    {
        int n = (int)BinaryPrimitives.ReadUInt64LittleEndian(file);
        return (Encoding.UTF8.GetString(file, 8, n), file[(8 + n)..]);
    }

    internal static byte[] JoinSafeTensors(string header, byte[] data)
    {
        var h = Encoding.UTF8.GetBytes(header);
        var b = new byte[8 + h.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(b, (ulong)h.Length);
        h.CopyTo(b, 8);
        data.CopyTo(b, 8 + h.Length);
        return b;
    }

    private static readonly string[] SafeTensorsKeys = ["dtype", "shape", "data_offsets", "__metadata__", "a", "b", "w"];

    [Fact]
    public void SafeTensorsFiles()
    {
        var seeds = FuzzHarness.Corpus("safetensors");
        var fromScratch = Gen.Select(Inputs.RandomJson(SafeTensorsKeys), Gen.Int[0, 64],
            (json, n) => JoinSafeTensors(json, new byte[n]));
        var gen = Mix((4, Inputs.Mutated(seeds, 256)), (4, HeaderJsonMutated(seeds)), (1, fromScratch), (1, Inputs.RandomBytes));
        FuzzHarness.Run("safetensors", gen, FuzzTargets.SafeTensorsFile(), 64 * MiB, output.WriteLine);
    }

    // ---- checkpoints ------------------------------------------------------------------------------------------------

    /// <summary>Edits one metadata value of a checkpoint that is itself JSON ("config", "training") as JSON, or
    /// replaces a plain one ("iteration", "adp.kind", …) with an odd string.</summary>
    private static string EditMetadata(string header, int m)
    {
        var root = System.Text.Json.Nodes.JsonNode.Parse(header)!.AsObject();
        if (root["__metadata__"] is not System.Text.Json.Nodes.JsonObject meta || meta.Count == 0) return header;
        var keys = meta.Select(kv => kv.Key).ToList();
        var key = keys[m % keys.Count];
        if (meta[key] is not System.Text.Json.Nodes.JsonValue jv || !jv.TryGetValue<string>(out var value)) return header;
        string[] odd = ["", "x", "-1", "1e400", "NaN", "9223372036854775808", "score-model", "classifier", "{}", "null", "[]"];
        meta[key] = value.StartsWith('{')
            ? Inputs.MutateJson(value, m / 7, m / 3, m / 11)
            : odd[m / keys.Count % odd.Length];
        return root.ToJsonString();
    }

    [Fact]
    public void Checkpoints()
    {
        var seeds = FuzzHarness.Corpus("checkpoint");
        var gen = Mix((2, Inputs.Mutated(seeds, 4096)), (6, MetadataMutated(seeds)), (2, HeaderJsonMutated(seeds)));
        FuzzHarness.Run("checkpoint", gen, FuzzTargets.Checkpoint(), 256 * MiB, output.WriteLine);
    }

    // ---- PNG ------------------------------------------------------------------------------------------------------

    /// <summary>Recomputes every chunk's CRC (so that an edit reaches the decoder instead of the CRC check); stops
    /// at the first chunk whose length runs past the end.</summary>
    internal static byte[] FixPngCrcs(byte[] png)
    {
        var b = (byte[])png.Clone();
        int at = 8;
        while (at + 12 <= b.Length)
        {
            long len = BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(at));
            if (at + 12 + len > b.Length) break;
            BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(at + 8 + (int)len), SeedCorpus.Crc32(b.AsSpan(at + 4, 4 + (int)len)));
            at += 12 + (int)len;
        }
        return b;
    }

    /// <summary>A PNG from scratch: an IHDR of extreme sizes and any colour type, bit depth, compression, filter and
    /// interlace bytes, then an IDAT of zlib data (valid or random) and IEND; CRCs right.</summary>
    private static readonly Gen<byte[]> PngFromScratch = Gen.Select(
        Gen.OneOf(0, 1, 2, 28, 32, 4097, 20000, 65535, 1 << 20, int.MaxValue, -1), Gen.OneOf(0, 1, 3, 28, 32, 20000, 1 << 16, 1 << 24, int.MaxValue),
        Gen.Byte.Array[5, 5], Gen.Byte.Array[0, 300], Gen.Bool,
        (w, h, fields, payload, zlib) =>
        {
            using var ms = new MemoryStream();
            ms.Write([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0d, 0x0a, 0x1a, 0x0a]);
            var ihdr = new byte[13];
            BinaryPrimitives.WriteInt32BigEndian(ihdr, w);
            BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), h);
            fields.CopyTo(ihdr, 8);
            if (fields[0] % 2 == 0) { ihdr[8] = new byte[] { 1, 2, 4, 8, 16 }[fields[1] % 5]; ihdr[9] = new byte[] { 0, 2, 3, 4, 6 }[fields[2] % 5]; ihdr[10] = ihdr[11] = 0; ihdr[12] = (byte)(fields[3] % 2); }
            SeedCorpus.WriteChunk(ms, "IHDR", ihdr);
            if (ihdr[9] == 3) SeedCorpus.WriteChunk(ms, "PLTE", new byte[48]);
            byte[] data = payload;
            if (zlib)
            {
                using var z = new MemoryStream();
                using (var zs = new System.IO.Compression.ZLibStream(z, System.IO.Compression.CompressionLevel.Fastest, true)) zs.Write(payload);
                data = z.ToArray();
            }
            SeedCorpus.WriteChunk(ms, "IDAT", data);
            SeedCorpus.WriteChunk(ms, "IEND", []);
            return ms.ToArray();
        });

    [Fact]
    public void Png()
    {
        var seeds = FuzzHarness.Corpus("png");
        var gen = Mix((2, Inputs.Mutated(seeds, 33)), (2, Inputs.Mutated(seeds, 33, FixPngCrcs)),
            (3, Inputs.Mutated(seeds, 1 << 20, FixPngCrcs)), (2, PngFromScratch), (1, Inputs.RandomBytes));
        FuzzHarness.Run("png", gen, FuzzTargets.Png(), 128 * MiB, output.WriteLine);
    }

    // ---- evaluation configuration (JSON) ----------------------------------------------------------------------------

    private static readonly string[] ConfigKeys =
    [
        "Dataset", "Split", "Images", "Classifier", "Score", "Purifier", "Runs", "Rules", "Seeds", "Resubmissions", "BatchSize",
        "Attacks", "StepsCurve", "SanityUnbounded", "ShardIndex", "ShardCount", "Kind", "Target", "Norm", "Epsilon", "Step",
        "Iterations", "Restarts", "RandomStart", "Loss", "Eot", "ReturnBest", "IterationsCurve", "Name", "Sigma", "Steps",
        "Lambda", "Delta", "AlphaMin", "AlphaMax", "Tau", "Faithful",
    ];

    [Fact]
    public void ConfigJson()
    {
        var seeds = FuzzHarness.Corpus("config-json");
        var gen = Mix((5, Inputs.MutatedJson(seeds)), (3, Inputs.Mutated(seeds, 4096)),
            (2, Inputs.RandomJson(ConfigKeys).Select(Encoding.UTF8.GetBytes)));
        FuzzHarness.Run("config-json", gen, FuzzTargets.ConfigJson(), 64 * MiB, output.WriteLine);
    }

    // ---- attack spec strings (--attack) ----------------------------------------------------------------------------

    private static readonly string[] SpecKeys =
        ["name", "kind", "target", "norm", "eps", "step", "iters", "restarts", "eot", "random-start", "best", "loss", "after", "KIND", "x", ""];

    private static readonly string[] SpecValues =
    [
        "pgd", "fgsm", "apgd", "none", "blind", "bare", "bpda", "bpda-mean", "bpda-score", "bpda-sign-vote", "full", "linf", "l2",
        "ce", "margin", "dlr", "true", "false", "0", "1", "-1", "0.3", "NaN", "Infinity", "-Infinity", "1e400", "-0", "2147483647",
        "2147483648", "-2147483648", "99", "7", "0x10", "", " ", "=", "1,5", "é", "\u0000", "ＰＧＤ", "１", "٣",
        "\"", "\"\"", "\"a, b\"", "\"pgd\"", " \"x\" ", "\t\"x\"", "\"a\"b",   // quoted values (commas inside, unclosed, text after the quote)
    ];

    private static readonly Gen<byte[]> SpecFromScratch = Gen.Select(Gen.OneOf(SpecKeys), Gen.OneOf(SpecValues), Gen.Int[0, 9])
        .Array[0, 8].Select(pairs => Encoding.UTF8.GetBytes(string.Join(",", pairs.Select(p => p.Item3 == 0 ? p.Item1 : $"{p.Item1}={p.Item2}"))));

    [Fact]
    public void AttackSpecs()
    {
        var seeds = FuzzHarness.Corpus("attack-spec");
        var gen = Mix((5, Inputs.Mutated(seeds, 16)), (4, SpecFromScratch), (1, Inputs.RandomBytes));
        FuzzHarness.Run("attack-spec", gen, FuzzTargets.AttackSpec(), 16 * MiB, output.WriteLine);
    }
}

/// <summary>What each parser's fuzz run does with one input: the entry points the CLI uses, on the input written where
/// the CLI would read it. Shared by the fuzz runs and the replay of tests/fuzz-corpus/regressions/.</summary>
public static class FuzzTargets
{
    private static void Try(Action step) => FuzzHarness.Try(step);

    public static Action<byte[]> For(string parser) => parser switch
    {
        "idx" => Idx(), "cifar-bin" => CifarBinary(), "cifar-targz" => CifarTarGz(), "safetensors" => SafeTensorsFile(),
        "checkpoint" => Checkpoint(), "png" => Png(), "config-json" => ConfigJson(), "attack-spec" => AttackSpec(),
        _ => throw new ArgumentException(parser),
    };

    /// <summary>The input as the test images (gzip name; the reader sniffs the content) and then as the test labels
    /// of a 3-record MNIST layout, loaded by <see cref="DatasetLoader"/>; and read by <see cref="IdxReader"/> alone.</summary>
    public static Action<byte[]> Idx()
    {
        var dir = FuzzHarness.TempDir("idx");
        var folder = Path.Combine(dir, SeedCorpus.IdxSpec.Folder);
        Directory.CreateDirectory(folder);
        var goodImages = SeedCorpus.Idx(0x803, [3, 28, 28], i => (byte)i);
        var goodLabels = SeedCorpus.Idx(0x801, [3], i => (byte)i);
        string images = Path.Combine(folder, "t10k-images-idx3-ubyte.gz"), labels = Path.Combine(folder, "t10k-labels-idx1-ubyte");
        return input =>
        {
            File.WriteAllBytes(images, input);
            File.WriteAllBytes(labels, goodLabels);
            Try(() => IdxReader.Read(images, 3));
            Try(() => IdxReader.Read(images, 1));
            Try(() => IdxReader.Parse(input, 3, "fuzz.idx"));
            Try(() => DatasetLoader.Load(SeedCorpus.IdxSpec, Split.Test, dir).Dispose());
            File.WriteAllBytes(images, goodImages);
            File.WriteAllBytes(labels, input);
            DatasetLoader.Load(SeedCorpus.IdxSpec, Split.Test, dir).Dispose();
        };
    }

    /// <summary>The input as test_batch.bin, then as test_batch_first_1000.bin, of a 4-record CIFAR-10 layout.</summary>
    public static Action<byte[]> CifarBinary()
    {
        var dir = FuzzHarness.TempDir("cifar");
        var folder = Path.Combine(dir, SeedCorpus.CifarSpec.Folder);
        Directory.CreateDirectory(folder);
        string test = Path.Combine(folder, "test_batch.bin"), first = Path.Combine(folder, "test_batch_first_1000.bin");
        return input =>
        {
            File.WriteAllBytes(test, input);
            Try(() => DatasetLoader.Load(SeedCorpus.CifarSpec, Split.Test, dir).Dispose());
            File.Delete(test);
            File.WriteAllBytes(first, input);
            Try(() => DatasetLoader.Load(SeedCorpus.CifarSpec, Split.Test, dir).Dispose());
            File.Delete(first);
        };
    }

    /// <summary>The input as the official archive (no loose batch files).</summary>
    public static Action<byte[]> CifarTarGz()
    {
        var dir = FuzzHarness.TempDir("cifar-targz");
        var archive = Path.Combine(dir, SeedCorpus.CifarSpec.ArchiveFileName!);
        return input =>
        {
            File.WriteAllBytes(archive, input);
            DatasetLoader.Load(SeedCorpus.CifarSpec, Split.Test, dir).Dispose();
        };
    }

    public static Action<byte[]> SafeTensorsFile() => input => SafeTensors.Parse(input, "fuzz.safetensors").Dispose();

    /// <summary>The input as a checkpoint file: loaded as a score model and as a classifier, its training options
    /// read as `--resume` reads them, and opened as either kind.</summary>
    public static Action<byte[]> Checkpoint()
    {
        var path = Path.Combine(FuzzHarness.TempDir("ckpt"), "fuzz.ckpt");
        return input =>
        {
            File.WriteAllBytes(path, input);
            Try(() => { var (net, _) = ScoreModelFile.Load(path); net.Dispose(); });
            Try(() => { var (net, _) = ClassifierFile.Load(path); net.Dispose(); });
            Try(() => ScoreTrainer.ReadOptions(path));
            Try(() => ClassifierTrainer.ReadOptions(path));
            using var f = IO.Checkpoint.Open(path, input.Length % 2 == 0 ? ScoreModelFile.Kind : ClassifierFile.Kind);
        };
    }

    public static Action<byte[]> Png()
    {
        var path = Path.Combine(FuzzHarness.TempDir("png"), "fuzz.png");
        return input =>
        {
            File.WriteAllBytes(path, input);
            Try(() => PngImages.Read(path, 1).Dispose());
            PngImages.Read(path, 3).Dispose();
        };
    }

    public static Action<byte[]> ConfigJson()
    {
        var path = Path.Combine(FuzzHarness.TempDir("config"), "config.json");
        return input =>
        {
            File.WriteAllBytes(path, input);
            UseConfig(path);
        };
    }

    public static Action<byte[]> AttackSpec() => input => UseAttackSpec(Encoding.UTF8.GetString(input));

    /// <summary>What `adp eval robust --config` does with a configuration before it loads any model: read, validate,
    /// list the attacks with their labels, protocols and ids, the images, and write it back as config.json.</summary>
    internal static void UseConfig(string path)
    {
        var cfg = RobustConfig.Load(path);
        cfg.Validate();
        foreach (var a in cfg.AllAttacks()) _ = (a.Label, a.Protocol(), a.Id(), EvaluationProgress.CellKey(a, cfg.Seeds[0]));
        _ = cfg.Shard;
        if (cfg.Images <= 100_000) _ = cfg.ImageIndices();
        _ = System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(cfg, RobustConfig.Json);
        _ = RobustEvaluation.ConfigFingerprint(cfg, "test", "?", "?");
    }

    /// <summary>What `adp eval robust --attack` does with a spec before any model is loaded.</summary>
    internal static void UseAttackSpec(string text)
    {
        var spec = EvalCommands.ParseAttack(text);
        spec.Validate();
        _ = (spec.Label, spec.Protocol(), spec.Id(), spec.Canonical());
        new RobustConfig { Classifier = "c", Score = "s", Attacks = [spec] }.Validate();
    }

}

/// <summary>The fuzz tests run one after another (each is single-threaded and times its inputs).</summary>
[CollectionDefinition("fuzz", DisableParallelization = true)]
public class FuzzCollection;
