using System.Buffers.Binary;
using System.Formats.Tar;
using System.IO.Compression;
using System.Text;
using System.Text.Json;
using Adp.Data;
using Adp.IO;
using Adp.Models;
using Adp.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Adp.Tests.Fuzz;

/// <summary>
/// The seed files of tests/fuzz-corpus/, made by code so that they can be remade (ADP_FUZZ_WRITE_CORPUS=1 with the
/// test <see cref="SeedCorpusTests.WriteSeedCorpus"/>): small valid inputs of every parser, in the variants the
/// parsers accept (raw and gzipped IDX, CIFAR-10 batches loose and in a tar.gz, safetensors of every dtype, score and
/// classifier checkpoints with optimizer state, PNGs of every colour type, evaluation configurations, attack specs).
/// The data sets the fuzz tests load have the shapes of <see cref="IdxSpec"/> and <see cref="CifarSpec"/>: those of the
/// real ones with 3 (IDX) and 4 (CIFAR-10) records, so that a seed is small.
/// </summary>
public static class SeedCorpus
{
    /// <summary>MNIST's layout with 3 test records (the loader checks counts against the spec).</summary>
    public static readonly DatasetSpec IdxSpec = DatasetRegistry.Mnist with
    {
        Name = "mnist-fuzz",
        Files = DatasetRegistry.Mnist.Files.Select(f => f with { Records = 3 }).ToList(),
    };

    /// <summary>CIFAR-10's layout with 4 records per batch and 2 in the first-1000 slice.</summary>
    public static readonly DatasetSpec CifarSpec = DatasetRegistry.Cifar10 with
    {
        Name = "cifar-10-fuzz",
        Files = DatasetRegistry.Cifar10.Files.Select(f => f with { Records = f.Role == "test_batch_first_1000" ? 2 : 4 }).ToList(),
    };

    public static byte[] Idx(int magic, int[] dims, Func<int, byte> value)
    {
        long n = dims.Aggregate(1L, (a, b) => a * b);
        var bytes = new byte[4 + 4 * dims.Length + n];
        BinaryPrimitives.WriteInt32BigEndian(bytes, magic);
        for (int i = 0; i < dims.Length; i++) BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4 + 4 * i), dims[i]);
        for (int i = 0; i < n; i++) bytes[4 + 4 * dims.Length + i] = value(i);
        return bytes;
    }

    public static byte[] CifarBatch(int records, int labelOffset = 0)
    {
        var b = new byte[records * 3073];
        for (int r = 0; r < records; r++)
        {
            b[r * 3073] = (byte)((r + labelOffset) % 10);
            for (int i = 1; i < 3073; i++) b[r * 3073 + i] = (byte)(i * 7 + r * 13);
        }
        return b;
    }

    public static byte[] TarGz(IEnumerable<(string Name, byte[] Data)> entries, TarEntryFormat format = TarEntryFormat.Pax)
    {
        using var ms = new MemoryStream();
        using (var gz = new GZipStream(ms, CompressionLevel.Optimal, leaveOpen: true))
        using (var tar = new TarWriter(gz, format, leaveOpen: true))
        {
            foreach (var (name, data) in entries)
            {
                TarEntry e = format switch
                {
                    TarEntryFormat.Gnu => new GnuTarEntry(TarEntryType.RegularFile, name),
                    TarEntryFormat.Ustar => new UstarTarEntry(TarEntryType.RegularFile, name),
                    TarEntryFormat.V7 => new V7TarEntry(TarEntryType.V7RegularFile, name),
                    _ => new PaxTarEntry(TarEntryType.RegularFile, name),
                };
                e.DataStream = new MemoryStream(data);
                tar.WriteEntry(e);
            }
        }
        return ms.ToArray();
    }

    public static Dictionary<string, byte[]> Idx() => new()
    {
        ["images-3x28x28.idx"] = Idx(0x803, [3, 28, 28], i => (byte)(i * 31)),
        ["labels-3.idx"] = Idx(0x801, [3], i => (byte)(i + 1)),
        ["images-3x28x28.idx.gz"] = Inputs.Gzip(Idx(0x803, [3, 28, 28], i => (byte)(i % 251))),
        ["labels-3.idx.gz"] = Inputs.Gzip(Idx(0x801, [3], i => (byte)(9 - i))),
        ["images-0x28x28.idx"] = Idx(0x803, [0, 28, 28], _ => 0),
        ["images-2x3x5.idx"] = Idx(0x803, [2, 3, 5], i => (byte)i),
    };

    public static Dictionary<string, byte[]> CifarBin() => new()
    {
        ["test_batch-4.bin"] = CifarBatch(4),
        ["test_batch-2.bin"] = CifarBatch(2, 7),
        ["test_batch-1.bin"] = CifarBatch(1, 9),
    };

    public static Dictionary<string, byte[]> CifarTarGz() => new()
    {
        ["cifar-10-binary-pax.tar.gz"] = TarGz([("cifar-10-batches-bin/test_batch.bin", CifarBatch(4)),
            ("cifar-10-batches-bin/batches.meta.txt", Encoding.ASCII.GetBytes("airplane\nautomobile\n"))]),
        ["cifar-10-binary-gnu.tar.gz"] = TarGz([("cifar-10-batches-bin/readme.html", Encoding.ASCII.GetBytes("<html></html>")),
            ("cifar-10-batches-bin/test_batch.bin", CifarBatch(4, 3))], TarEntryFormat.Gnu),
        ["cifar-10-binary-ustar.tar.gz"] = TarGz([("./cifar-10-batches-bin/test_batch.bin", CifarBatch(4, 5))], TarEntryFormat.Ustar),
        ["cifar-10-binary-v7.tar.gz"] = TarGz([("cifar-10-batches-bin/test_batch_first_1000.bin", CifarBatch(2))], TarEntryFormat.V7),
    };

    public static Dictionary<string, byte[]> SafeTensorsFiles()
    {
        using var scope = NewDisposeScope();
        var types = new[] { ScalarType.Float32, ScalarType.Float64, ScalarType.Float16, ScalarType.BFloat16, ScalarType.Int64,
            ScalarType.Int32, ScalarType.Int16, ScalarType.Int8, ScalarType.Byte, ScalarType.Bool };
        using TorchSharp.Scalar six = 6;
        Tensor Count() => arange(RootedScalars.IntZero, six, RootedScalars.IntOne);   // 0 … 5, int64
        var all = types.Select((t, i) => new KeyValuePair<string, Tensor>($"t{i}.{t}",
            (t == ScalarType.Bool ? Count().remainder(RootedScalars.IntTwo).eq(RootedScalars.IntOne) : Count().to(t)).reshape(2, 3)))
            .ToList();
        return new()
        {
            ["every-dtype.safetensors"] = SafeTensors.Serialize(all, new Dictionary<string, string> { ["format"] = "pt", ["note"] = "seed" }),
            ["one-f32.safetensors"] = SafeTensors.Serialize([new("w", tensor(new float[] { 1, 2, 3, 4 }).reshape(2, 2))]),
            ["empty-tensor.safetensors"] = SafeTensors.Serialize([new("e", zeros(0, 3)), new("s", tensor(3.5f))]),
            ["no-tensors.safetensors"] = SafeTensors.Serialize([], new Dictionary<string, string> { ["k"] = "v" }),
            ["scalar-and-4d.safetensors"] = SafeTensors.Serialize([new("scalar", tensor(1.0)), new("conv.weight", ones(2, 1, 3, 3))]),
        };
    }

    /// <summary>Tiny score and classifier checkpoints as the trainers write them: weights, "training" options and the
    /// optimizer state.</summary>
    public static Dictionary<string, byte[]> Checkpoints()
    {
        var dir = FuzzHarness.TempDir("seeds");
        var result = new Dictionary<string, byte[]>();
        manual_seed(1);
        var scoreCfg = new ScoreModelConfig(1, 28, 2, 1.0, 0.01, 3);
        using (var net = new Ncsnv2(scoreCfg))
        {
            var opts = new ScoreTrainingOptions { Dataset = "mnist", Model = scoreCfg, Iterations = 4, BatchSize = 2, CheckpointEvery = 2 };
            var opt = optim.Adam(net.parameters(), 1e-3);
            Step(net, opt, randn(2, 1, 28, 28));
            var path = Path.Combine(dir, "score.ckpt");
            Checkpoint.Save(path, ScoreModelFile.Kind, [("model.", net), ("ema.", net)], new Dictionary<string, string>
            {
                ["config"] = JsonSerializer.Serialize(scoreCfg), ["dataset"] = "mnist", ["iteration"] = "2", ["seed"] = "0",
                ["final_loss"] = "0.5", ["purification_weights"] = "model", [ScoreTrainer.OptionsKey] = JsonSerializer.Serialize(opts),
                ["saved_utc"] = "2026-01-01T00:00:00.0000000Z",
            }, Checkpoint.OptimizerBytes(opt));
            result["score-ngf2.ckpt"] = File.ReadAllBytes(path);
        }
        foreach (var (name, cfg) in new[]
                 {
                     ("classifier-resnet10-w1.ckpt", new ClassifierConfig(ClassifierArchitecture.ResNet, 3, 32, 10, 10, 1, 0, ClassifierConfig.CifarMean, ClassifierConfig.CifarStd)),
                     ("classifier-wrn10-1-stripped.ckpt", new ClassifierConfig(ClassifierArchitecture.WideResNet, 1, 28, 10, 10, 1, 0.3)),
                 })
        {
            using var net = Classifier.Create(cfg);
            var opts = new ClassifierTrainingOptions { Dataset = cfg.Channels == 3 ? "cifar-10" : "mnist", Model = cfg, Epochs = 1, BatchSize = 2 };
            var opt = optim.SGD(net.parameters(), 0.1, 0.9);
            Step(net, opt, rand(2, cfg.Channels, cfg.ImageSize, cfg.ImageSize));
            var path = Path.Combine(dir, name);
            Checkpoint.Save(path, ClassifierFile.Kind, [("model.", net)], new Dictionary<string, string>
            {
                ["config"] = JsonSerializer.Serialize(cfg), ["dataset"] = opts.Dataset, ["iteration"] = "1", ["total_iterations"] = "2",
                ["seed"] = "0", ["final_loss"] = "2.3", ["validation_accuracy"] = "0.1000", [ClassifierTrainer.OptionsKey] = JsonSerializer.Serialize(opts),
                ["saved_utc"] = "2026-01-01T00:00:00.0000000Z",
            }, name.Contains("stripped") ? null : Checkpoint.OptimizerBytes(opt));  // a shipped copy has no optimizer state
            result[name] = File.ReadAllBytes(path);
        }
        Directory.Delete(dir, true);
        return result;
    }

    private static void Step(nn.Module<Tensor, Tensor> net, optim.Optimizer opt, Tensor x)
    {
        using var scope = NewDisposeScope();
        opt.zero_grad();
        net.forward(x).Squared().mean().backward();
        opt.step();
    }

    // ---- PNG: every colour type and bit depth the format has, written by hand (zlib + CRC) ----

    private static readonly uint[] CrcTable = Enumerable.Range(0, 256).Select(n =>
    {
        uint c = (uint)n;
        for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xedb88320u ^ (c >> 1) : c >> 1;
        return c;
    }).ToArray();

    public static uint Crc32(ReadOnlySpan<byte> data)
    {
        uint c = 0xffffffffu;
        foreach (var b in data) c = CrcTable[(c ^ b) & 0xff] ^ (c >> 8);
        return c ^ 0xffffffffu;
    }

    public static void WriteChunk(Stream s, string type, ReadOnlySpan<byte> data)
    {
        Span<byte> len = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(len, (uint)data.Length);
        s.Write(len);
        var td = new byte[4 + data.Length];
        Encoding.ASCII.GetBytes(type).CopyTo(td, 0);
        data.CopyTo(td.AsSpan(4));
        s.Write(td);
        BinaryPrimitives.WriteUInt32BigEndian(len, Crc32(td));
        s.Write(len);
    }

    /// <summary>A PNG of the given colour type (0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA) and bit depth, with
    /// a gradient; filter type <c>y % 5</c> on row y (the bytes are stored as if filtered by it, which is valid
    /// content).</summary>
    public static byte[] Png(int width, int height, int colorType, int bitDepth, bool withExtras = false)
    {
        int channels = colorType switch { 0 => 1, 2 => 3, 3 => 1, 4 => 2, _ => 4 };
        int rowBytes = (width * channels * bitDepth + 7) / 8;
        var raw = new byte[height * (rowBytes + 1)];
        for (int y = 0; y < height; y++)
        {
            raw[y * (rowBytes + 1)] = (byte)(y % 5);
            for (int x = 0; x < rowBytes; x++) raw[y * (rowBytes + 1) + 1 + x] = (byte)(x * 11 + y * 7);
        }
        using var ms = new MemoryStream();
        ms.Write([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0d, 0x0a, 0x1a, 0x0a]);
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, width);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), height);
        ihdr[8] = (byte)bitDepth; ihdr[9] = (byte)colorType;
        WriteChunk(ms, "IHDR", ihdr);
        if (colorType == 3)
        {
            int entries = 1 << bitDepth;
            WriteChunk(ms, "PLTE", Enumerable.Range(0, entries * 3).Select(i => (byte)(i * 37)).ToArray());
            WriteChunk(ms, "tRNS", Enumerable.Range(0, Math.Min(entries, 4)).Select(i => (byte)(i * 80)).ToArray());
        }
        if (withExtras)
        {
            WriteChunk(ms, "gAMA", [0, 0, 0xb1, 0x8f]);
            WriteChunk(ms, "tEXt", Encoding.ASCII.GetBytes("Comment\0fuzz seed"));
        }
        using (var z = new MemoryStream())
        {
            using (var zs = new ZLibStream(z, CompressionLevel.Optimal, leaveOpen: true)) zs.Write(raw);
            var data = z.ToArray();
            // Two IDAT chunks: decoders must join them.
            WriteChunk(ms, "IDAT", data.AsSpan(0, data.Length / 2));
            WriteChunk(ms, "IDAT", data.AsSpan(data.Length / 2));
        }
        WriteChunk(ms, "IEND", []);
        return ms.ToArray();
    }

    public static Dictionary<string, byte[]> Pngs()
    {
        var d = new Dictionary<string, byte[]>
        {
            ["gray8-28.png"] = Png(28, 28, 0, 8),
            ["gray16-28.png"] = Png(28, 28, 0, 16),
            ["gray1-28.png"] = Png(28, 28, 0, 1),
            ["rgb8-32.png"] = Png(32, 32, 2, 8, withExtras: true),
            ["rgb16-4.png"] = Png(4, 4, 2, 16),
            ["palette4-28.png"] = Png(28, 28, 3, 4),
            ["palette8-32.png"] = Png(32, 32, 3, 8),
            ["grayalpha8-28.png"] = Png(28, 28, 4, 8),
            ["rgba8-32.png"] = Png(32, 32, 6, 8),
            ["rgba16-3x5.png"] = Png(3, 5, 6, 16),
        };
        var skia = Path.Combine(FuzzHarness.TempDir("png"), "skia.png");
        using (var img = rand(1, 28, 28)) PngImages.Write(skia, img);
        d["skia-gray-28.png"] = File.ReadAllBytes(skia);
        return d;
    }

    public static Dictionary<string, byte[]> Configs()
    {
        var d = new Dictionary<string, byte[]>();
        foreach (var name in new[] { "demo-fashion-mnist.json", "results-mnist-bpda.json" })
            d[name] = File.ReadAllBytes(Path.Combine(TestEnvironment.RepoRoot, "configs", name));
        d["minimal.json"] = Encoding.UTF8.GetBytes("""{"Classifier":"c.ckpt","Score":"s.ckpt","Attacks":[{"Kind":"Pgd","Target":"Blind","Epsilon":0.3,"Iterations":2}]}""");
        d["curves.json"] = Encoding.UTF8.GetBytes("""
            {"Dataset":"mnist","Split":"validation","Images":8,"Classifier":"c.ckpt","Score":"s.ckpt","Runs":2,"Seeds":[0,1],
             "Resubmissions":2,"BatchSize":2,"StepsCurve":[0,1,2],"ShardIndex":1,"ShardCount":2,"SanityUnbounded":false,
             "Rules":["MeanSoftmax","MajorityVote"],"Purifier":{"Sigma":0.25,"Steps":2,"Faithful":true},
             "Attacks":[{"Kind":"None","Target":"Blind"},{"Kind":"Pgd","Target":"Bpda","Norm":"Linf","Epsilon":0.3,"Step":0.1,
             "Iterations":2,"Eot":2,"IterationsCurve":[0,1,2]},{"Kind":"Apgd","Target":"Full","Norm":"L2","Epsilon":1.5,"Loss":"Dlr"}]}
            """);
        return d;
    }

    public static Dictionary<string, byte[]> AttackSpecs()
    {
        string[] specs =
        [
            "kind=pgd,target=blind,eps=0.3,iters=2",
            "kind=none,target=blind",
            "kind=none,target=bare,name=clean",
            "kind=pgd,target=bpda,eps=0.3,step=0.075,iters=40,eot=15,random-start=false",
            "kind=apgd,target=full,norm=l2,eps=1.5,loss=dlr,restarts=2",
            "kind=fgsm,target=bare,eps=0.1,loss=margin",
            "kind=pgd,target=bpda-score,eps=0.03137,iters=20,eot=4,best=true",
            "kind=pgd,target=bpda-sign-vote,eps=8e-3,iters=5",
            "name=PGD (bpda-mean),kind=pgd,target=bpda-mean,eps=0.3,loss=cw",
            "kind=pgd,target=bare,eps=0.3,name=\"PGD (EOT 1, 2 iters)\",iters=2",
            "kind=apgd,target=bare,eps=0.3,loss=dlr , name = \"\" ,restarts=1",
        ];
        return specs.Select((s, i) => ($"spec-{i}.txt", Encoding.UTF8.GetBytes(s))).ToDictionary(p => p.Item1, p => p.Item2);
    }

    /// <summary>Every parser's seeds, by corpus folder.</summary>
    public static Dictionary<string, Func<Dictionary<string, byte[]>>> All => new()
    {
        ["idx"] = Idx, ["cifar-bin"] = CifarBin, ["cifar-targz"] = CifarTarGz, ["safetensors"] = SafeTensorsFiles,
        ["checkpoint"] = Checkpoints, ["png"] = Pngs, ["config-json"] = Configs, ["attack-spec"] = AttackSpecs,
    };
}
