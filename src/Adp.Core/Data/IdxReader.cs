using System.Buffers.Binary;

namespace Adp.Data;

/// <summary>The IDX format of MNIST and Fashion-MNIST: magic 0x0000_08_ND (unsigned bytes, ND dimensions),
/// ND big-endian int32 sizes, then the data.</summary>
public static class IdxReader
{
    public sealed record IdxArray(int[] Dims, byte[] Data, int Offset)
    {
        public int Count => Dims[0];
    }

    /// <summary>Parses IDX content; <paramref name="expectedDims"/> is 3 for images, 1 for labels.</summary>
    public static IdxArray Parse(byte[] content, int expectedDims, string path)
    {
        uint expectedMagic = 0x0800u | (uint)expectedDims;
        if (content.Length < 4)
            throw new AdpException($"{path}: truncated IDX file ({content.Length} bytes, no header)");
        uint magic = BinaryPrimitives.ReadUInt32BigEndian(content);
        if (magic != expectedMagic)
            throw new AdpException($"{path}: wrong magic number 0x{magic:X8}, expected 0x{expectedMagic:X8} (IDX {(expectedDims == 1 ? "labels" : "images")})");
        int header = 4 + 4 * expectedDims;
        if (content.Length < header)
            throw new AdpException($"{path}: truncated IDX header ({content.Length} bytes, expected at least {header})");
        var dims = new int[expectedDims];
        long total = 1;
        for (int i = 0; i < expectedDims; i++)
        {
            dims[i] = BinaryPrimitives.ReadInt32BigEndian(content.AsSpan(4 + 4 * i));
            if (dims[i] < 0) throw new AdpException($"{path}: negative IDX dimension {dims[i]}");
            total *= dims[i];
        }
        if (content.Length - header < total)
            throw new AdpException($"{path}: truncated IDX data ({content.Length - header} bytes, expected {total} for {string.Join("x", dims)})");
        if (content.Length - header > total)
            throw new AdpException($"{path}: IDX file has {content.Length - header - total} trailing bytes after {string.Join("x", dims)} records");
        return new IdxArray(dims, content, header);
    }

    public static IdxArray Read(string path, int expectedDims) => Parse(RawFiles.ReadContent(path), expectedDims, path);
}
