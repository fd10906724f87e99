using SkiaSharp;
using Adp.Models;
using static TorchSharp.torch;

namespace Adp.Data;

/// <summary>PNG reading and writing for single images and image grids (SkiaSharp).</summary>
public static class PngImages
{
    /// <summary>Largest image read, in pixels (2048×2048). Decoding allocates 4 bytes a pixel (RGBA) and then 4·C (C ≤ 3
    /// floats): at most 16 bytes a pixel, 64 MiB here; at 4096×4096 (the bound until 2026-12-01) a 1.3 kB file claiming
    /// 524,288×32 pixels made adp allocate 134 MB (the PNG fuzz test's bound is 128 MiB).</summary>
    public const long MaxPixels = 2048L * 2048;

    /// <summary>
    /// Reads a PNG (or JPEG) as a 1×C×H×W float tensor in [0,1], C = 1 or 3 as asked, by one rule for every pixel of
    /// every image. The file's 8-bit straight (unpremultiplied) R, G, B, A values are decoded without colour-space
    /// conversion (16-bit images are reduced to 8 bits; images without alpha have A = 255). Each channel is then
    /// composited over a <b>black</b> background, v·A/255, so a fully transparent pixel reads 0 and an opaque one
    /// its value (MNIST-style digits are light on black). For C = 1 the composited R, G, B become grey by the
    /// ITU-R BT.601 luma, (299R + 587G + 114B)/1000, which is the value itself for grey pixels; for C = 3 they are
    /// kept. Values are finally divided by 255.
    /// </summary>
    public static Tensor Read(string path, int channels)
    {
        if (channels is not (1 or 3)) throw new ArgumentOutOfRangeException(nameof(channels), channels, "expected 1 or 3");
        if (!File.Exists(path)) throw new AdpException($"{path}: file not found");
        using var codec = SKCodec.Create(path) ?? throw new AdpException($"{path}: not a readable PNG/JPEG image");
        var (data, h, w) = Decode(codec, channels, path);
        return tensor(data, [1, channels, h, w]);
    }

    /// <summary>
    /// The pixels of a PNG or JPEG held in memory (an upload, say), by the rule of <see cref="Read"/>: C·H·W floats in
    /// [0,1], channel-major. <paramref name="source"/> names the image in error messages (<see cref="AdpException"/>:
    /// not an image, or a file that does not decode, e.g. a truncated one).
    /// </summary>
    public static (float[] Pixels, int Height, int Width) Decode(byte[] bytes, int channels, string source)
    {
        if (channels is not (1 or 3)) throw new ArgumentOutOfRangeException(nameof(channels), channels, "expected 1 or 3");
        using var data = SKData.CreateCopy(bytes);
        using var codec = SKCodec.Create(data) ?? throw new AdpException($"{source}: not a readable PNG/JPEG image");
        return Decode(codec, channels, source);
    }

    private static (float[] Pixels, int Height, int Width) Decode(SKCodec codec, int channels, string source)
    {
        int h = codec.Info.Height, w = codec.Info.Width;
        // The header's size decides the allocations below (4 bytes a pixel, then 4·C): refuse sizes no model takes
        // before decoding, so a few-byte file claiming 60000×60000 pixels cannot claim gigabytes.
        if (w < 1 || h < 1 || (long)w * h > MaxPixels)
            throw new AdpException($"{source}: image is {w}×{h} pixels; adp reads images of at most {MaxPixels} pixels (the models take 28×28 or 32×32)");
        // Straight RGBA, no colour space: what the file holds, so compositing below is the only use of alpha.
        var info = new SKImageInfo(w, h, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        var result = codec.GetPixels(info, out byte[] px);
        if (result != SKCodecResult.Success)
            throw new AdpException(
                $"{source}: cannot decode the image ({result}{(result == SKCodecResult.IncompleteInput ? ", truncated file?" : "")})");
        var data = new float[channels * h * w];
        for (int i = 0; i < h * w; i++)
        {
            int r = px[4 * i], g = px[4 * i + 1], b = px[4 * i + 2], a = px[4 * i + 3];
            if (channels == 1)
                data[i] = (float)((299 * r + 587 * g + 114 * b) / 1000.0 * a / (255.0 * 255.0));
            else
            {
                data[i] = (float)(r * a / (255.0 * 255.0));
                data[h * w + i] = (float)(g * a / (255.0 * 255.0));
                data[2 * h * w + i] = (float)(b * a / (255.0 * 255.0));
            }
        }
        return (data, h, w);
    }

    /// <summary>Writes a C×H×W (or 1×C×H×W) tensor in [0,1] as PNG, scaled up by <paramref name="scale"/>
    /// (nearest neighbour), atomically.</summary>
    public static void Write(string path, Tensor image, int scale = 1) => IO.AtomicFile.Write(path, Encode(image, scale));

    /// <summary>A C×H×W (or 1×C×H×W) tensor in [0,1] as the bytes of a PNG, scaled up by <paramref name="scale"/>
    /// (nearest neighbour): what <see cref="Write"/> writes.</summary>
    public static byte[] Encode(Tensor image, int scale = 1)
    {
        using var img = (image.dim() == 4 ? image[0] : image).detach().cpu().ClampedToUnit();  // held scalars: see RootedScalars
        int c = (int)img.shape[0], h = (int)img.shape[1], w = (int)img.shape[2];
        using var bytes = img.mul(RootedScalars.Float255).round().to(ScalarType.Byte);
        var px = bytes.data<byte>().ToArray();
        using var bmp = new SKBitmap(w * scale, h * scale, SKColorType.Rgba8888, SKAlphaType.Opaque);
        for (int y = 0; y < h * scale; y++)
            for (int x = 0; x < w * scale; x++)
            {
                int i = (y / scale) * w + x / scale;
                bmp.SetPixel(x, y, c == 1 ? new SKColor(px[i], px[i], px[i]) : new SKColor(px[i], px[h * w + i], px[2 * h * w + i]));
            }
        using var data = bmp.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }

    /// <summary>Lays out images (each C×H×W) in rows, with a 2-pixel white gutter, and writes a PNG.</summary>
    public static void WriteGrid(string path, IReadOnlyList<IReadOnlyList<Tensor>> rows, int scale = 3)
    {
        int cols = rows.Max(r => r.Count);
        var first = rows[0][0];
        long c = first.shape[^3], h = first.shape[^2], w = first.shape[^1];
        const int gap = 2;
        using var canvas = ones(c, rows.Count * (h + gap) - gap, cols * (w + gap) - gap);
        for (int r = 0; r < rows.Count; r++)
            for (int k = 0; k < rows[r].Count; k++)
                canvas.narrow(1, r * (h + gap), h).narrow(2, k * (w + gap), w).copy_(rows[r][k].reshape(c, h, w));
        Write(path, canvas, scale);
    }
}
