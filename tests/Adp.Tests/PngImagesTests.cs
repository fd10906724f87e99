using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using Adp.Data;
using static TorchSharp.torch;

namespace Adp.Tests;

public class PngImagesTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void WriteThenRead_RoundTripsTo8BitPrecision(int channels)
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory("adp-png-").FullName, "x.png");
        var x = rand(new long[] { channels, 7, 5 }, generator: new Generator(1, CPU));
        PngImages.Write(path, x);
        var back = PngImages.Read(path, channels);
        Assert.Equal(new long[] { 1, channels, 7, 5 }, back.shape);
        Assert.True((back[0] - x).abs().max().item<float>() <= 0.5f / 255 + 1e-6);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void EncodeAndDecodeInMemory_AgreeWithWriteAndRead(int channels)
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory("adp-png-").FullName, "x.png");
        var x = rand(new long[] { channels, 6, 9 }, generator: new Generator(2, CPU));
        PngImages.Write(path, x);
        var bytes = PngImages.Encode(x);
        Assert.Equal(File.ReadAllBytes(path), bytes);
        var (pixels, h, w) = PngImages.Decode(bytes, channels, "upload");
        Assert.Equal((6, 9), (h, w));
        Assert.Equal(PngImages.Read(path, channels).data<float>().ToArray(), pixels);
        var e = Assert.Throws<AdpException>(() => PngImages.Decode(bytes[..(bytes.Length / 2)], channels, "upload"));
        Assert.Contains("upload: cannot decode the image (IncompleteInput, truncated file?)", e.Message);
        Assert.Contains("upload: not a readable PNG/JPEG image", Assert.Throws<AdpException>(() => PngImages.Decode("text"u8.ToArray(), channels, "upload")).Message);
    }

    [Fact]
    public void Grid_HasTheExpectedSize()
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory("adp-grid-").FullName, "g.png");
        var img = ones(1, 4, 4);
        PngImages.WriteGrid(path, [[img, img, img], [img]], scale: 2);
        var back = PngImages.Read(path, 1);
        // 3 columns of 4 px with 2-px gutters, 2 rows, all ×2.
        Assert.Equal(new long[] { 1, 1, (2 * 4 + 2) * 2, (3 * 4 + 2 * 2) * 2 }, back.shape);
    }

    // One rule for every pixel (PngImages.Read): straight 8-bit RGBA composited over black, v·A/255; grey by
    // BT.601 luma (299R + 587G + 114B)/1000; then /255. The expected values below are computed from that rule.
    private static float Grey(int r, int g, int b, int a) => (float)((299 * r + 587 * g + 114 * b) / 1000.0 * a / 65025.0);
    private static float Channel(int v, int a) => (float)(v * a / 65025.0);

    [CasesFact]
    public void AlphaRowsCase_CompositesOverBlackForEveryPixel()
    {
        var path = TestEnvironment.CaseFile("png-rgba-alpha-rows.png");
        var rgba = DecodeRgba8(path, out int w, out int h);
        using var grey = PngImages.Read(path, 1);
        using var colour = PngImages.Read(path, 3);
        Assert.Equal(new long[] { 1, 1, 28, 28 }, grey.shape);
        // Rows 0 and 1 hold grey 200 at alpha 0 and 128: 0 and 200·128/255/255, the same across the row.
        Assert.Equal(0f, grey[0, 0, 0].abs().max().item<float>());
        Assert.Equal(200 * 128 / 255f / 255f, grey[0, 0, 1].min().item<float>(), 1e-6f);
        Assert.Equal(200 * 128 / 255f / 255f, grey[0, 0, 1].max().item<float>(), 1e-6f);
        var g = grey.data<float>().ToArray();
        var c = colour.data<float>().ToArray();
        for (int i = 0; i < w * h; i++)
        {
            int r = rgba[4 * i], gr = rgba[4 * i + 1], b = rgba[4 * i + 2], a = rgba[4 * i + 3];
            Assert.Equal(Grey(r, gr, b, a), g[i], 1e-6f);
            Assert.Equal(Channel(r, a), c[i], 1e-6f);
            Assert.Equal(Channel(gr, a), c[w * h + i], 1e-6f);
            Assert.Equal(Channel(b, a), c[2 * w * h + i], 1e-6f);
        }
    }

    [Theory]
    [InlineData(6)]   // RGBA
    [InlineData(4)]   // grey + alpha
    [InlineData(2)]   // RGB
    [InlineData(0)]   // grey
    public void EveryPngColourType_FollowsTheSameRule(int colourType)
    {
        // Every pixel a different colour and alpha, including alpha 0 and 255 and colours whose premultiplied
        // value would round differently.
        const int w = 16, h = 16;
        var rgba = new byte[w * h * 4];
        var rng = new Random(colourType);
        for (int i = 0; i < w * h; i++)
        {
            rgba[4 * i] = (byte)rng.Next(256);
            rgba[4 * i + 1] = colourType is 0 or 4 ? rgba[4 * i] : (byte)rng.Next(256);
            rgba[4 * i + 2] = colourType is 0 or 4 ? rgba[4 * i] : (byte)rng.Next(256);
            rgba[4 * i + 3] = colourType is 0 or 2 ? (byte)255 : (byte)(i < 4 ? new[] { 0, 1, 128, 255 }[i] : rng.Next(256));
        }
        var path = Path.Combine(Directory.CreateTempSubdirectory("adp-png-").FullName, $"type{colourType}.png");
        File.WriteAllBytes(path, EncodePng(rgba, w, h, colourType));
        using var grey = PngImages.Read(path, 1);
        using var colour = PngImages.Read(path, 3);
        var g = grey.data<float>().ToArray();
        var c = colour.data<float>().ToArray();
        for (int i = 0; i < w * h; i++)
        {
            int r = rgba[4 * i], gr = rgba[4 * i + 1], b = rgba[4 * i + 2], a = rgba[4 * i + 3];
            Assert.Equal(Grey(r, gr, b, a), g[i], 1e-6f);
            Assert.Equal(Channel(r, a), c[i], 1e-6f);
            Assert.Equal(Channel(gr, a), c[w * h + i], 1e-6f);
            Assert.Equal(Channel(b, a), c[2 * w * h + i], 1e-6f);
        }
    }

    [Fact]
    public void NotAnImage_IsAnAdpException()
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory("adp-png-").FullName, "x.png");
        File.WriteAllText(path, "not a png");
        var e = Assert.Throws<AdpException>(() => PngImages.Read(path, 1));
        Assert.Contains(path, e.Message);
    }

    /// <summary>A minimal 8-bit PNG encoder (filter 0, one IDAT), independent of SkiaSharp. Colour types:
    /// 0 grey, 2 RGB, 4 grey + alpha, 6 RGBA; the grey types take R of each pixel.</summary>
    private static byte[] EncodePng(byte[] rgba, int w, int h, int colourType)
    {
        int[] take = colourType switch { 0 => [0], 2 => [0, 1, 2], 4 => [0, 3], _ => [0, 1, 2, 3] };
        using var raw = new MemoryStream();
        for (int y = 0; y < h; y++)
        {
            raw.WriteByte(0);
            for (int x = 0; x < w; x++)
                foreach (int k in take) raw.WriteByte(rgba[4 * (y * w + x) + k]);
        }
        using var z = new MemoryStream();
        using (var zs = new ZLibStream(z, CompressionLevel.Optimal, leaveOpen: true)) raw.WriteTo(zs);
        using var png = new MemoryStream();
        png.Write([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]);
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, w);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), h);
        ihdr[8] = 8;
        ihdr[9] = (byte)colourType;
        Chunk(png, "IHDR", ihdr);
        Chunk(png, "IDAT", z.ToArray());
        Chunk(png, "IEND", []);
        return png.ToArray();
    }

    private static void Chunk(Stream s, string type, byte[] data)
    {
        Span<byte> n = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(n, data.Length);
        s.Write(n);
        var typed = Encoding.ASCII.GetBytes(type).Concat(data).ToArray();
        s.Write(typed);
        BinaryPrimitives.WriteUInt32BigEndian(n, Crc32(typed));
        s.Write(n);
    }

    private static uint Crc32(byte[] bytes)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in bytes)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320 : crc >> 1;
        }
        return ~crc;
    }

    /// <summary>The straight RGBA bytes of an 8-bit RGBA PNG whose rows all use filter 0 (as the case file does),
    /// decoded without SkiaSharp.</summary>
    private static byte[] DecodeRgba8(string path, out int w, out int h)
    {
        var b = File.ReadAllBytes(path);
        using var idat = new MemoryStream();
        w = h = 0;
        for (int i = 8; i < b.Length;)
        {
            int n = BinaryPrimitives.ReadInt32BigEndian(b.AsSpan(i));
            string type = Encoding.ASCII.GetString(b, i + 4, 4);
            if (type == "IHDR")
            {
                w = BinaryPrimitives.ReadInt32BigEndian(b.AsSpan(i + 8));
                h = BinaryPrimitives.ReadInt32BigEndian(b.AsSpan(i + 12));
                Assert.True(b[i + 16] == 8 && b[i + 17] == 6, "test decoder reads 8-bit RGBA only");
            }
            if (type == "IDAT") idat.Write(b, i + 8, n);
            i += 12 + n;
        }
        idat.Position = 0;
        using var raw = new MemoryStream();
        using (var zs = new ZLibStream(idat, CompressionMode.Decompress)) zs.CopyTo(raw);
        var rows = raw.ToArray();
        var rgba = new byte[w * h * 4];
        for (int y = 0; y < h; y++)
        {
            Assert.True(rows[y * (1 + 4 * w)] == 0, "test decoder reads filter 0 only");
            Array.Copy(rows, y * (1 + 4 * w) + 1, rgba, y * 4 * w, 4 * w);
        }
        return rgba;
    }

    /// <summary>The pixel bound keeps decoding's allocations (RGBA bytes, then C ≤ 3 floats: 16 bytes a pixel) within half the
    /// PNG fuzz test's 128 MiB bound, and a header claiming more pixels (the fuzz finding: 524,288×32) is refused with one line
    /// before anything is allocated for it.</summary>
    [Theory]
    [InlineData(524288, 32)]
    [InlineData(2049, 2048)]
    public void HeaderClaimingTooManyPixels_IsRefused_AndTheBoundFitsTheAllocationBudget(int width, int height)
    {
        Assert.True(PngImages.MaxPixels * 16 <= 64L << 20);
        var header = Fuzz.SeedCorpus.Png(4, 4, 0, 8).ToArray();
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(16), width);   // IHDR data starts at byte 16
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(20), height);
        var crc = Fuzz.SeedCorpus.Crc32(header.AsSpan(12, 17));                              // type and data of IHDR
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(29), crc);
        var e = Assert.Throws<AdpException>(() => PngImages.Decode(header, 1, "claim.png"));
        Assert.Equal($"claim.png: image is {width}×{height} pixels; adp reads images of at most {PngImages.MaxPixels} pixels (the models take " +
                     "28×28 or 32×32)", e.Message);
    }
}
