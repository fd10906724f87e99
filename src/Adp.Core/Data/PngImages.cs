using SkiaSharp;
using static TorchSharp.torch;

namespace Adp.Data;

/// <summary>PNG reading and writing for single images and image grids (SkiaSharp).</summary>
public static class PngImages
{
    /// <summary>Reads a PNG as a 1×C×H×W float tensor in [0,1]; C = 1 (luminance) or 3 (RGB), as asked.</summary>
    public static Tensor Read(string path, int channels)
    {
        if (!File.Exists(path)) throw new AdpException($"{path}: file not found");
        using var bmp = SKBitmap.Decode(path) ?? throw new AdpException($"{path}: not a readable PNG/JPEG image");
        int h = bmp.Height, w = bmp.Width;
        var data = new float[channels * h * w];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                var c = bmp.GetPixel(x, y);
                if (channels == 1)
                    data[y * w + x] = bmp.ColorType == SKColorType.Gray8 || (c.Red == c.Green && c.Green == c.Blue)
                        ? c.Red / 255f
                        : (0.299f * c.Red + 0.587f * c.Green + 0.114f * c.Blue) / 255f;
                else
                {
                    data[y * w + x] = c.Red / 255f;
                    data[h * w + y * w + x] = c.Green / 255f;
                    data[2 * h * w + y * w + x] = c.Blue / 255f;
                }
            }
        return tensor(data, [1, channels, h, w]);
    }

    /// <summary>Writes a C×H×W (or 1×C×H×W) tensor in [0,1] as PNG, scaled up by <paramref name="scale"/>
    /// (nearest neighbour), atomically.</summary>
    public static void Write(string path, Tensor image, int scale = 1)
    {
        using var img = (image.dim() == 4 ? image[0] : image).detach().cpu().clamp(0, 1);
        int c = (int)img.shape[0], h = (int)img.shape[1], w = (int)img.shape[2];
        var px = img.mul(255).round().to(ScalarType.Byte).data<byte>().ToArray();
        using var bmp = new SKBitmap(w * scale, h * scale, SKColorType.Rgba8888, SKAlphaType.Opaque);
        for (int y = 0; y < h * scale; y++)
            for (int x = 0; x < w * scale; x++)
            {
                int i = (y / scale) * w + x / scale;
                bmp.SetPixel(x, y, c == 1 ? new SKColor(px[i], px[i], px[i]) : new SKColor(px[i], px[h * w + i], px[2 * h * w + i]));
            }
        using var data = bmp.Encode(SKEncodedImageFormat.Png, 100);
        IO.AtomicFile.Write(path, data.ToArray());
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
