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

    /// <summary>Size of the validation split unless a command says otherwise: the last 5,000 training images.</summary>
    public const int DefaultValidationImages = 5000;

    /// <summary>The images evaluations run on: "test" (the test split) or "validation" (the last
    /// <paramref name="validationImages"/> training images, for tuning). Throws <see cref="AdpException"/> for other names.</summary>
    public static ImageDataset LoadEvaluationSplit(DatasetSpec spec, string split, string dataDir, int validationImages = DefaultValidationImages) => split switch
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
        // The headers are checked against the data set before any data is read: a corrupted header cannot make the
        // loader allocate more than the data set's size.
        var images = IdxReader.Read(imgPath, 3, dims =>
        {
            CheckCount(imgPath, dims[0], imgFile.Records);
            if (dims[1] != spec.Height || dims[2] != spec.Width)
                throw new AdpException($"{imgPath}: images are {dims[1]}x{dims[2]}, expected {spec.Height}x{spec.Width}");
        });
        var labels = IdxReader.Read(lblPath, 1, dims => CheckCount(lblPath, dims[0], lblFile.Records));
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
            var got = ReadCifarFile(spec, dataDir, f, checkSize: true);
            if (got is null && f.Role == "test_batch")
            {
                var first = spec.Files.Single(x => x.Role == "test_batch_first_1000");
                got = ReadCifarFile(spec, dataDir, first, checkSize: true);
                if (got is null) throw Missing(spec, dataDir, f, alsoTried: first.FileName);
                partial = true;
                contents.Add((got.Value.Path, got.Value.Data, first));
                continue;
            }
            if (got is null) throw Missing(spec, dataDir, f);
            contents.Add((got.Value.Path, got.Value.Data, f));
        }
        int n = 0;
        foreach (var (path, data, file) in contents)
        {
            CheckCifarSize(path, data.Length, file);
            n += data.Length / CifarRecord;
        }
        var pixels = new byte[(long)n * 3072];
        var labels = new long[n];
        int i = 0;
        foreach (var (path, data, _) in contents)
        {
            for (int r = 0; r < data.Length / CifarRecord; r++, i++)
            {
                byte label = data[r * CifarRecord];
                if (label > 9) throw new AdpException($"{path}: record {r} has label {label}, expected 0..9");
                labels[i] = label;
                Buffer.BlockCopy(data, r * CifarRecord + 1, pixels, i * 3072, 3072);
            }
        }
        return new ImageDataset(spec, split,
            tensor(pixels, [n, 3, 32, 32], ScalarType.Byte), tensor(labels, [n], ScalarType.Int64), partial);
    }

    /// <summary>Bytes of one CIFAR-10 record: the label, then 3×32×32 pixels.</summary>
    public const int CifarRecord = 1 + 3072;

    /// <summary>A batch of <paramref name="length"/> bytes must hold exactly the file's records.</summary>
    private static void CheckCifarSize(string path, long length, DataFile file)
    {
        if (length % CifarRecord != 0)
            throw new AdpException($"{path}: {length} bytes is not a whole number of 3073-byte CIFAR-10 records (truncated or corrupted)");
        if (length / CifarRecord > int.MaxValue) throw new AdpException($"{path}: {length / CifarRecord} records, expected {file.Records}");
        CheckCount(path, (int)(length / CifarRecord), file.Records);
    }

    /// <summary>A CIFAR-10 batch from the extracted folder or, failing that, from the official tar.gz. With
    /// <paramref name="checkSize"/>, a file or archive entry whose size is not the batch's is refused before it is read
    /// (the loader; the verifier reports sizes itself).</summary>
    internal static (string Path, byte[] Data)? ReadCifarFile(DatasetSpec spec, string dataDir, DataFile file, bool checkSize = false)
    {
        var path = Path.Combine(dataDir, spec.Folder, file.FileName);
        if (File.Exists(path))
        {
            try
            {
                using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
                if (checkSize) CheckCifarSize(path, fs.Length, file);
                if (fs.Length > Array.MaxLength) throw new AdpException($"{path}: {fs.Length} bytes, more than adp reads (not a CIFAR-10 batch)");
                var data = new byte[fs.Length];
                fs.ReadExactly(data);
                return (path, data);
            }
            catch (IOException e) { throw new AdpException($"{path}: cannot read ({e.Message})", e); }
            catch (UnauthorizedAccessException e) { throw new AdpException($"{path}: cannot read ({e.Message})", e); }
        }
        if (spec.ArchiveFileName is null) return null;
        var archive = Path.Combine(dataDir, spec.ArchiveFileName);
        if (!File.Exists(archive)) return null;
        string entryName = $"{spec.Folder}/{file.FileName}", where = $"{archive}!{entryName}";
        var entry = ReadTarGzEntry(archive, entryName, checkSize ? length => CheckCifarSize(where, length, file) : null);
        return entry is null ? null : (where, entry);
    }

    /// <summary>The bytes of one entry of a tar.gz archive (null when absent). <paramref name="checkLength"/> sees the
    /// entry's length from its header before anything is read; without it, entries are read up to a byte array's
    /// limit. A corrupted archive is an <see cref="AdpException"/> naming it.</summary>
    internal static byte[]? ReadTarGzEntry(string archive, string entryName, Action<long>? checkLength = null)
    {
        try
        {
            using var fs = File.OpenRead(archive);
            using var gz = new GZipStream(fs, CompressionMode.Decompress);
            using var tar = new TarReader(gz);
            while (tar.GetNextEntry() is { } e)
            {
                if (e.Name.TrimStart('.', '/') != entryName || e.DataStream is null) continue;
                checkLength?.Invoke(e.Length);
                if (e.Length > Array.MaxLength)
                    throw new AdpException($"{archive}: entry {entryName} claims {e.Length} bytes, more than adp reads (corrupted archive?)");
                // Copied as it comes (not allocated from the header's claim): a header may claim more than the archive holds.
                using var ms = new MemoryStream();
                e.DataStream.CopyTo(ms);
                if (ms.Length != e.Length)
                    throw new AdpException($"{archive}: entry {entryName} holds {ms.Length} bytes, its header says {e.Length} (truncated archive?)");
                return ms.ToArray();
            }
            return null;
        }
        // What .NET's gzip and tar readers throw for bytes they cannot parse (a size field that does not fit, a
        // checksum that does not match, a stream that ends early, an unknown entry type).
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException or FormatException or OverflowException
                                      or ArgumentException or InvalidOperationException or NotSupportedException)
        {
            throw new AdpException($"{archive}: truncated or corrupted tar.gz archive ({e.Message.TrimEnd('.')})", e);
        }
        catch (IOException e) { throw new AdpException($"{archive}: cannot read ({e.Message})", e); }
        catch (UnauthorizedAccessException e) { throw new AdpException($"{archive}: cannot read ({e.Message})", e); }
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
