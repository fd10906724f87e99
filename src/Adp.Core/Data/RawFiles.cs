using System.IO.Compression;
using System.Security.Cryptography;

namespace Adp.Data;

/// <summary>Reading whole data files (gzipped or not) with errors that name the file.</summary>
public static class RawFiles
{
    public static bool IsGzip(string path)
    {
        using var fs = File.OpenRead(path);
        return fs.ReadByte() == 0x1f && fs.ReadByte() == 0x8b;
    }

    /// <summary>The file's content, decompressed if it is gzipped.</summary>
    public static byte[] ReadContent(string path)
    {
        if (!File.Exists(path)) throw new AdpException($"{path}: file not found");
        if (!IsGzip(path)) return File.ReadAllBytes(path);
        try
        {
            using var fs = File.OpenRead(path);
            using var gz = new GZipStream(fs, CompressionMode.Decompress);
            using var ms = new MemoryStream();
            gz.CopyTo(ms);
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
