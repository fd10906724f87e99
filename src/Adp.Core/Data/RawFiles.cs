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
        return Decompress(File.ReadAllBytes(path), path);
    }

    /// <summary>The bytes of a file as read, decompressed if they are gzipped (errors name <paramref name="path"/>).</summary>
    public static byte[] Decompress(byte[] bytes, string path)
    {
        if (bytes.Length < 2 || bytes[0] != 0x1f || bytes[1] != 0x8b) return bytes;
        try
        {
            using var gz = new GZipStream(new MemoryStream(bytes), CompressionMode.Decompress);
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
