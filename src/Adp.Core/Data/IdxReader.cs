using System.Buffers.Binary;
using System.IO.Compression;

namespace Adp.Data;

/// <summary>The IDX format of MNIST and Fashion-MNIST: magic 0x0000_08_ND (unsigned bytes, ND dimensions),
/// ND big-endian int32 sizes, then the data.</summary>
public static class IdxReader
{
    public sealed record IdxArray(int[] Dims, byte[] Data, int Offset)
    {
        public int Count => Dims[0];
    }

    /// <summary>Largest data section adp reads (a byte array's limit, less the header).</summary>
    public static long MaxDataBytes => Array.MaxLength - 64;

    /// <summary>Parses IDX content; <paramref name="expectedDims"/> is 3 for images, 1 for labels.</summary>
    public static IdxArray Parse(byte[] content, int expectedDims, string path)
    {
        var (dims, total, header) = ParseHeader(content, content.Length, expectedDims, path);
        CheckLength(content.Length - header, total, dims, path);
        return new IdxArray(dims, content, header);
    }

    /// <summary>
    /// Reads an IDX file, raw or gzipped. The header is read and checked first (magic, dimensions, a size adp can hold;
    /// then <paramref name="checkHeader"/>, e.g. the record count and image size a data set must have), so a header
    /// claiming more than the file holds, or than the caller expects, is refused before the data is allocated; a
    /// gzipped file is never inflated past what its header claims.
    /// </summary>
    public static IdxArray Read(string path, int expectedDims, Action<int[]>? checkHeader = null)
    {
        if (!File.Exists(path)) throw new AdpException($"{path}: file not found");
        try
        {
            using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
            bool gzip = fs.Length >= 2 && fs.ReadByte() == 0x1f && fs.ReadByte() == 0x8b;
            fs.Position = 0;
            using Stream s = gzip ? new GZipStream(fs, CompressionMode.Decompress, leaveOpen: true) : fs;
            var head = new byte[4 + 4 * expectedDims];
            int got = s.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
            long knownLength = gzip ? got : fs.Length;  // the length the messages give for a short header
            var (dims, total, header) = ParseHeader(head.AsSpan(0, got), knownLength, expectedDims, path);
            checkHeader?.Invoke(dims);
            if (!gzip) CheckLength(fs.Length - header, total, dims, path);
            byte[] content;
            if (gzip)
            {
                // The inflated length is unknown until read: grow with what arrives, never past the header's claim, so
                // a header claiming gigabytes over a few bytes of data allocates no more than the data.
                using var ms = new MemoryStream();
                ms.Write(head, 0, header);
                var buffer = new byte[(int)Math.Min(81920, Math.Max(1, total))];
                for (int r; ms.Length - header < total && (r = s.Read(buffer, 0, (int)Math.Min(buffer.Length, total - (ms.Length - header)))) > 0;)
                    ms.Write(buffer, 0, r);
                if (ms.Length - header < total) CheckLength(ms.Length - header, total, dims, path);
                content = ms.ToArray();
            }
            else
            {
                content = new byte[header + total];  // the file's length was checked above
                head.CopyTo(content, 0);
                s.ReadExactly(content.AsSpan(header));
            }
            if (gzip && s.ReadByte() >= 0)
            {
                // Count what follows, up to a bound: the message need not be exact for a file this wrong.
                long extra = 1, limit = 1 << 24;
                var sink = new byte[81920];
                for (int r; extra < limit && (r = s.Read(sink)) > 0;) extra += r;
                throw new AdpException($"{path}: IDX file has {(extra >= limit ? "more than " : "")}{extra} trailing bytes after {Shape(dims)} records");
            }
            return new IdxArray(dims, content, header);
        }
        catch (InvalidDataException e) { throw new AdpException($"{path}: truncated or corrupted gzip data ({e.Message.TrimEnd('.')})", e); }
        catch (EndOfStreamException e) { throw new AdpException($"{path}: truncated gzip data", e); }
        catch (IOException e) { throw new AdpException($"{path}: cannot read ({e.Message})", e); }
        catch (UnauthorizedAccessException e) { throw new AdpException($"{path}: cannot read ({e.Message})", e); }
    }

    /// <summary>Checks magic and dimensions; returns them, the data size they claim (at most
    /// <see cref="MaxDataBytes"/>) and the header length. <paramref name="length"/> is what messages call the file's
    /// length.</summary>
    private static (int[] Dims, long Total, int Header) ParseHeader(ReadOnlySpan<byte> content, long length, int expectedDims, string path)
    {
        uint expectedMagic = 0x0800u | (uint)expectedDims;
        if (content.Length < 4)
            throw new AdpException($"{path}: truncated IDX file ({length} bytes, no header)");
        uint magic = BinaryPrimitives.ReadUInt32BigEndian(content);
        if (magic != expectedMagic)
            throw new AdpException($"{path}: wrong magic number 0x{magic:X8}, expected 0x{expectedMagic:X8} (IDX {(expectedDims == 1 ? "labels" : "images")})");
        int header = 4 + 4 * expectedDims;
        if (content.Length < header)
            throw new AdpException($"{path}: truncated IDX header ({length} bytes, expected at least {header})");
        var dims = new int[expectedDims];
        long total = 1;
        for (int i = 0; i < expectedDims; i++)
        {
            dims[i] = BinaryPrimitives.ReadInt32BigEndian(content[(4 + 4 * i)..]);
            if (dims[i] < 0) throw new AdpException($"{path}: negative IDX dimension {dims[i]}");
        }
        // The product of three int32 sizes can pass 2^63: stop as soon as it exceeds what adp reads.
        for (int i = 0; i < expectedDims && total > 0; i++)
        {
            total *= dims[i];
            if (total > MaxDataBytes)
                throw new AdpException($"{path}: IDX header claims {Shape(dims)} records, more than the {MaxDataBytes} bytes adp reads (corrupted header?)");
        }
        if (dims.Contains(0)) total = 0;
        return (dims, total, header);
    }

    private static void CheckLength(long available, long total, int[] dims, string path)
    {
        if (available < total)
            throw new AdpException($"{path}: truncated IDX data ({available} bytes, expected {total} for {Shape(dims)})");
        if (available > total)
            throw new AdpException($"{path}: IDX file has {available - total} trailing bytes after {Shape(dims)} records");
    }

    private static string Shape(int[] dims) => string.Join("x", dims);
}
