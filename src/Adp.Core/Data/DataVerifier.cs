namespace Adp.Data;

public enum FileStatus { Ok, Missing, Md5Mismatch, Corrupt }

public sealed record FileCheck(DataFile File, string? Path, FileStatus Status, int Records, string Detail);

/// <summary>Result of checking one data set: per file, and the train/test record counts found.</summary>
public sealed record DatasetCheck(DatasetSpec Spec, IReadOnlyList<FileCheck> Files, int TrainRecords, int TestRecords, bool PartialTest)
{
    public bool Present => Files.Any(f => f.Status != FileStatus.Missing);
    public bool Verified => TrainRecords == Spec.TrainCount && TestRecords > 0 &&
                            Files.All(f => f.Status is FileStatus.Ok or FileStatus.Missing);
    public IEnumerable<FileCheck> Failures => Files.Where(f => f.Status is FileStatus.Md5Mismatch or FileStatus.Corrupt);
}

/// <summary>Checks md5s (of the file, or of its decompressed content where a repackager rewrote the gzip
/// header) and record counts.</summary>
public static class DataVerifier
{
    public static DatasetCheck Verify(DatasetSpec spec, string dataDir)
    {
        var checks = spec.Files.Select(f => CheckFile(spec, dataDir, f)).ToList();
        int Count(Func<DataFile, bool> which) => checks.Where(c => which(c.File) && c.Status == FileStatus.Ok && !c.File.Role.EndsWith("labels")).Sum(c => c.Records);
        int train = Count(f => DatasetSpec.IsTrain(f.Role));
        bool fullTest = checks.Any(c => c.File.Role is "test_batch" or "test-images" && c.Status == FileStatus.Ok);
        int test = Count(f => f.Role is "test-images" or "test_batch");
        bool partial = false;
        if (!fullTest && spec.Format == DataFormat.Cifar10Binary)
        {
            test = Count(f => f.Role == "test_batch_first_1000");
            partial = test > 0;
        }
        // For CIFAR-10, the first-1000 file is optional when the full test batch is there, and vice versa.
        if (spec.Format == DataFormat.Cifar10Binary)
            checks = checks.Where(c => c.Status != FileStatus.Missing || !(c.File.Role.StartsWith("test_batch"))).ToList();
        return new DatasetCheck(spec, checks, train, test, partial);
    }

    public static FileCheck CheckFile(DatasetSpec spec, string dataDir, DataFile file)
    {
        string? path = spec.Format == DataFormat.Idx
            ? DatasetLoader.FindFile(spec, dataDir, file)
            : File.Exists(Path.Combine(dataDir, spec.Folder, file.FileName)) ? Path.Combine(dataDir, spec.Folder, file.FileName) : null;
        if (path is null)
        {
            if (spec.Format == DataFormat.Cifar10Binary && spec.ArchiveFileName is not null &&
                File.Exists(Path.Combine(dataDir, spec.ArchiveFileName)))
                return CheckCifarContent(spec, dataDir, file);
            return new FileCheck(file, null, FileStatus.Missing, 0, "not present");
        }
        try
        {
            if (spec.Format == DataFormat.Idx)
            {
                byte[] fileBytes = File.ReadAllBytes(path);
                string md5 = RawFiles.Md5(fileBytes);
                byte[] content = RawFiles.Decompress(fileBytes, path);
                string detail = "md5 " + md5;
                if (md5 != file.Md5)
                {
                    string raw = RawFiles.Md5(content);
                    if (raw != file.RawMd5)
                        return new FileCheck(file, path, FileStatus.Md5Mismatch, 0,
                            $"md5 {md5} (content {raw}), expected {file.Md5} (content {file.RawMd5})");
                    detail = "content md5 " + raw;
                }
                var arr = IdxReader.Parse(content, file.Role.EndsWith("labels") ? 1 : 3, path);
                return Counted(file, path, arr.Count, detail);
            }
            var bytes = File.ReadAllBytes(path);
            return CheckCifarBytes(file, path, bytes);
        }
        catch (AdpException e)
        {
            return new FileCheck(file, path, FileStatus.Corrupt, 0, e.Message);
        }
    }

    private static FileCheck CheckCifarContent(DatasetSpec spec, string dataDir, DataFile file)
    {
        try
        {
            var got = DatasetLoader.ReadCifarFile(spec, dataDir, file);
            return got is null
                ? new FileCheck(file, null, FileStatus.Missing, 0, "not present")
                : CheckCifarBytes(file, got.Value.Path, got.Value.Data);
        }
        catch (AdpException e)
        {
            return new FileCheck(file, Path.Combine(dataDir, spec.ArchiveFileName!), FileStatus.Corrupt, 0, e.Message);
        }
    }

    private static FileCheck CheckCifarBytes(DataFile file, string path, byte[] bytes)
    {
        string md5 = RawFiles.Md5(bytes);
        if (md5 != file.Md5)
            return new FileCheck(file, path, FileStatus.Md5Mismatch, 0, $"md5 {md5}, expected {file.Md5}");
        if (bytes.Length % 3073 != 0)
            return new FileCheck(file, path, FileStatus.Corrupt, 0, $"{bytes.Length} bytes is not a whole number of 3073-byte records");
        return Counted(file, path, bytes.Length / 3073, "md5 " + md5);
    }

    private static FileCheck Counted(DataFile file, string path, int records, string detail) =>
        records == file.Records
            ? new FileCheck(file, path, FileStatus.Ok, records, detail)
            : new FileCheck(file, path, FileStatus.Corrupt, records, $"{records} records, expected {file.Records}");
}
