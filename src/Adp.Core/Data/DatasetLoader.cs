using System.Formats.Tar;
using System.IO.Compression;
using static TorchSharp.torch;

namespace Adp.Data;

/// <summary>Loads a split of a registered data set from a data directory. Formats: IDX (gzipped or raw) and
/// CIFAR-10 binary batches, either extracted or inside the official tar.gz.</summary>
public static class DatasetLoader
{
    public static ImageDataset Load(string dataset, Split split, string? dataDir = null) =>
        Load(DatasetRegistry.Get(dataset), split, DataDirectory.Resolve(dataDir));

    public static ImageDataset Load(DatasetSpec spec, Split split, string dataDir)
    {
        if (split == Split.Test && EmbeddedData.Has(spec) && !TestFilesPresent(spec, dataDir))
            return EmbeddedData.LoadTest(spec);
        if (!Directory.Exists(dataDir))
            throw new AdpException($"data directory {dataDir}: folder not found (set --data-dir or {DataDirectory.EnvironmentVariable}, or run 'adp data fetch {spec.Name}')");
        return spec.Format switch
        {
            DataFormat.Idx => LoadIdx(spec, split, dataDir),
            DataFormat.Cifar10Binary => LoadCifar(spec, split, dataDir),
            _ => throw new NotSupportedException(spec.Format.ToString()),
        };
    }

    private static bool TestFilesPresent(DatasetSpec spec, string dataDir) =>
        Directory.Exists(dataDir) && spec.Files.Where(f => f.Role.StartsWith("test")).Any(f => FindFile(spec, dataDir, f) is not null);

    /// <summary>The images evaluations run on: "test" (the test split) or "validation" (the last
    /// <paramref name="validationImages"/> training images, for tuning). Throws <see cref="AdpException"/> for other names.</summary>
    public static ImageDataset LoadEvaluationSplit(DatasetSpec spec, string split, string dataDir, int validationImages = 5000) => split switch
    {
        "test" => Load(spec, Split.Test, dataDir),
        "validation" => LoadValidation(spec, dataDir, validationImages),
        _ => throw new AdpException($"--split: expected test or validation, got '{split}'"),
    };

    private static ImageDataset LoadValidation(DatasetSpec spec, string dataDir, int count)
    {
        using var train = Load(spec, Split.Train, dataDir);
        return train.ValidationTail(count);
    }

    /// <summary>Finds a data file in the data set's folder, gzipped or not; null when absent.</summary>
    public static string? FindFile(DatasetSpec spec, string dataDir, DataFile file)
    {
        var folder = Path.Combine(dataDir, spec.Folder);
        var candidates = new List<string> { Path.Combine(folder, file.FileName) };
        if (file.FileName.EndsWith(".gz")) candidates.Add(Path.Combine(folder, file.FileName[..^3]));
        return candidates.FirstOrDefault(File.Exists);
    }

    private static ImageDataset LoadIdx(DatasetSpec spec, Split split, string dataDir)
    {
        string prefix = split == Split.Train ? "train" : "test";
        var imgFile = spec.Files.Single(f => f.Role == prefix + "-images");
        var lblFile = spec.Files.Single(f => f.Role == prefix + "-labels");
        var imgPath = FindFile(spec, dataDir, imgFile) ?? throw Missing(spec, dataDir, imgFile);
        var lblPath = FindFile(spec, dataDir, lblFile) ?? throw Missing(spec, dataDir, lblFile);
        var images = IdxReader.Read(imgPath, 3);
        var labels = IdxReader.Read(lblPath, 1);
        CheckCount(imgPath, images.Count, imgFile.Records);
        CheckCount(lblPath, labels.Count, lblFile.Records);
        if (images.Dims[1] != spec.Height || images.Dims[2] != spec.Width)
            throw new AdpException($"{imgPath}: images are {images.Dims[1]}x{images.Dims[2]}, expected {spec.Height}x{spec.Width}");
        var labelBytes = labels.Data.AsSpan(labels.Offset, labels.Count);
        CheckLabels(lblPath, labelBytes, spec.ClassNames.Count);
        var pixels = tensor(images.Data.AsSpan(images.Offset, images.Count * spec.Height * spec.Width).ToArray(),
            [images.Count, 1, spec.Height, spec.Width], ScalarType.Byte);
        var lbl = tensor(labelBytes.ToArray().Select(b => (long)b).ToArray(), [labels.Count], ScalarType.Int64);
        return new ImageDataset(spec, split, pixels, lbl);
    }

    private static ImageDataset LoadCifar(DatasetSpec spec, Split split, string dataDir)
    {
        var roles = split == Split.Train
            ? spec.Files.Where(f => DatasetSpec.IsTrain(f.Role)).ToList()
            : [spec.Files.Single(f => f.Role == "test_batch")];
        bool partial = false;
        var contents = new List<(string Path, byte[] Data, DataFile File)>();
        foreach (var f in roles)
        {
            var got = ReadCifarFile(spec, dataDir, f);
            if (got is null && f.Role == "test_batch")
            {
                var first = spec.Files.Single(x => x.Role == "test_batch_first_1000");
                got = ReadCifarFile(spec, dataDir, first);
                if (got is null) throw Missing(spec, dataDir, f, alsoTried: first.FileName);
                partial = true;
                contents.Add((got.Value.Path, got.Value.Data, first));
                continue;
            }
            if (got is null) throw Missing(spec, dataDir, f);
            contents.Add((got.Value.Path, got.Value.Data, f));
        }
        const int record = 1 + 3072;
        int n = 0;
        foreach (var (path, data, file) in contents)
        {
            if (data.Length % record != 0)
                throw new AdpException($"{path}: {data.Length} bytes is not a whole number of 3073-byte CIFAR-10 records (truncated or corrupted)");
            CheckCount(path, data.Length / record, file.Records);
            n += data.Length / record;
        }
        var pixels = new byte[(long)n * 3072];
        var labels = new long[n];
        int i = 0;
        foreach (var (path, data, _) in contents)
        {
            for (int r = 0; r < data.Length / record; r++, i++)
            {
                byte label = data[r * record];
                if (label > 9) throw new AdpException($"{path}: record {r} has label {label}, expected 0..9");
                labels[i] = label;
                Buffer.BlockCopy(data, r * record + 1, pixels, i * 3072, 3072);
            }
        }
        return new ImageDataset(spec, split,
            tensor(pixels, [n, 3, 32, 32], ScalarType.Byte), tensor(labels, [n], ScalarType.Int64), partial);
    }

    /// <summary>A CIFAR-10 batch from the extracted folder or, failing that, from the official tar.gz.</summary>
    internal static (string Path, byte[] Data)? ReadCifarFile(DatasetSpec spec, string dataDir, DataFile file)
    {
        var path = Path.Combine(dataDir, spec.Folder, file.FileName);
        if (File.Exists(path)) return (path, File.ReadAllBytes(path));
        if (spec.ArchiveFileName is null) return null;
        var archive = Path.Combine(dataDir, spec.ArchiveFileName);
        if (!File.Exists(archive)) return null;
        var entry = ReadTarGzEntry(archive, $"{spec.Folder}/{file.FileName}");
        return entry is null ? null : ($"{archive}!{spec.Folder}/{file.FileName}", entry);
    }

    internal static byte[]? ReadTarGzEntry(string archive, string entryName)
    {
        try
        {
            using var fs = File.OpenRead(archive);
            using var gz = new GZipStream(fs, CompressionMode.Decompress);
            using var tar = new TarReader(gz);
            while (tar.GetNextEntry() is { } e)
            {
                if (e.Name.TrimStart('.', '/') != entryName || e.DataStream is null) continue;
                using var ms = new MemoryStream();
                e.DataStream.CopyTo(ms);
                return ms.ToArray();
            }
            return null;
        }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException or FormatException)
        {
            throw new AdpException($"{archive}: truncated or corrupted tar.gz archive ({e.Message.TrimEnd('.')})", e);
        }
    }

    private static void CheckCount(string path, int found, int expected)
    {
        if (found != expected)
            throw new AdpException($"{path}: {found} records, expected {expected}");
    }

    private static void CheckLabels(string path, ReadOnlySpan<byte> labels, int classes)
    {
        for (int i = 0; i < labels.Length; i++)
            if (labels[i] >= classes) throw new AdpException($"{path}: label {labels[i]} at record {i}, expected 0..{classes - 1}");
    }

    private static AdpException Missing(DatasetSpec spec, string dataDir, DataFile f, string? alsoTried = null) =>
        new($"{Path.Combine(dataDir, spec.Folder, f.FileName)}: file not found{(alsoTried is null ? "" : $" (nor {alsoTried})")}; run 'adp data fetch {spec.Name}' or point --data-dir at a folder holding {spec.Folder}/");
}
