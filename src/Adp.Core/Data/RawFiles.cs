using System.IO.Compression;
using System.Security.Cryptography;

namespace Adp.Data;

/// <summary>Reading whole data files (gzipped or not) with errors that name the file.</summary>
public static class RawFiles
{
    /// <summary>The file's content, decompressed if it is gzipped.</summary>
    public static byte[] ReadContent(string path)
    {
        if (!File.Exists(path)) throw new AdpException($"{path}: file not found");
        try
        {
            if (new FileInfo(path).Length > MaxContentBytes)
                throw new AdpException($"{path}: {new FileInfo(path).Length} bytes, more than the {MaxContentBytes} adp reads (not a data set file)");
            return Decompress(File.ReadAllBytes(path), path);
        }
        catch (IOException e) { throw new AdpException($"{path}: cannot read ({e.Message})", e); }
        catch (UnauthorizedAccessException e) { throw new AdpException($"{path}: cannot read ({e.Message})", e); }
    }

    /// <summary>Largest decompressed content read (far above any data set file adp knows: MNIST's training images
    /// are 47 MB): a file that inflates past it is refused, not inflated into memory.</summary>
    public const long MaxContentBytes = 1L << 30;

    /// <summary>The bytes of a file as read, decompressed if they are gzipped (errors name <paramref name="path"/>).</summary>
    public static byte[] Decompress(byte[] bytes, string path)
    {
        if (bytes.Length < 2 || bytes[0] != 0x1f || bytes[1] != 0x8b) return bytes;
        try
        {
            using var gz = new GZipStream(new MemoryStream(bytes), CompressionMode.Decompress);
            using var ms = new MemoryStream();
            var buffer = new byte[81920];
            for (int n; (n = gz.Read(buffer)) > 0;)
            {
                if (ms.Length + n > MaxContentBytes)
                    throw new AdpException($"{path}: gzip data inflates to more than {MaxContentBytes} bytes (not a data set file adp reads)");
                ms.Write(buffer, 0, n);
            }
            return ms.ToArray();
        }
        catch (InvalidDataException e)
        {
            throw new AdpException($"{path}: truncated or corrupted gzip data ({e.Message.TrimEnd('.')})", e);
        }
        catch (EndOfStreamException e)
        {
            throw new AdpException($"{path}: truncated gzip data", e);
        }
    }

    public static string Md5(byte[] content) => Convert.ToHexStringLower(MD5.HashData(content));

    public static string Md5OfFile(string path)
    {
        using var fs = File.OpenRead(path);
        return Convert.ToHexStringLower(MD5.HashData(fs));
    }
}
