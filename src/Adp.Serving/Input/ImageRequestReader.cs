using System.Globalization;
using System.Text.Json;
using Adp.Data;
using Adp.Serving.Inference;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Net.Http.Headers;

namespace Adp.Serving.Input;

/// <summary>An image from a request, checked against the model: C·H·W floats in [0,1], and the request's seed when it
/// gave one.</summary>
public sealed record RequestImage(float[] Pixels, long? Seed);

/// <summary>
/// Reads the image of a /v1/classify or /v1/purify request, in one of three forms:
/// <list type="bullet">
/// <item><c>image/png</c> or <c>image/jpeg</c>: the file as the body (seed: <c>?seed=N</c>);</item>
/// <item><c>multipart/form-data</c>: the file in the field <c>image</c> (or the only file), seed in the field <c>seed</c>
/// or the query;</item>
/// <item><c>application/json</c>: <c>{"pixels": …, "seed": N}</c>, pixels in [0,1] as C×H×W or H×W nested arrays or a
/// flat array of C·H·W values.</item>
/// </list>
/// Images are decoded by <see cref="PngImages.Decode"/> (its one rule for alpha and colour → grey), so an upload
/// reads as `adp classify` reads the file. Anything else is a <see cref="BadInputException"/>: 413 over the size
/// limit, 415 for another content type, 422 for the wrong size or channels, 400 for the rest.
/// </summary>
public static class ImageRequestReader
{
    public const long MaxSeed = (1L << 53) - 1;   // exact in a JavaScript number

    public static async Task<RequestImage> ReadAsync(HttpRequest request, DefenseModels model, long maxBytes, CancellationToken ct)
    {
        if (request.ContentLength is long length && length > maxBytes)
            throw TooLarge(length, maxBytes);
        if (string.IsNullOrEmpty(request.ContentType))
            throw new BadInputException(415, $"no Content-Type; {Accepted}");
        if (!MediaTypeHeaderValue.TryParse(request.ContentType, out var media) || media.MediaType.Value is not { } type)
            throw new BadInputException(415, $"unreadable Content-Type '{request.ContentType}'; {Accepted}");
        long? querySeed = ParseSeed(request.Query["seed"].ToString(), "query parameter 'seed'");
        switch (type.ToLowerInvariant())
        {
            case "image/png" or "image/jpeg" or "image/jpg":
                return new RequestImage(DecodeImage(await ReadBody(request, maxBytes, ct), model, "the uploaded image"), querySeed);
            case "multipart/form-data":
                return await ReadMultipart(request, model, maxBytes, querySeed, ct);
            case "application/json":
                return ReadJson(await ReadBody(request, maxBytes, ct), model, querySeed);
            default:
                throw new BadInputException(415, $"unsupported Content-Type '{type}'; {Accepted}");
        }
    }

    public const string Accepted =
        "send image/png or image/jpeg (the file as the body), multipart/form-data (the file in the field 'image') or " +
        "application/json ({\"pixels\": [...], \"seed\": N})";

    private static BadInputException TooLarge(long length, long max) =>
        new(413, $"the request body is {(length > 0 ? $"{length:N0} bytes" : "larger than the limit")}; the limit is {max:N0} bytes");

    /// <summary>The body, refusing it once it passes <paramref name="maxBytes"/> (for bodies without a Content-Length).</summary>
    private static async Task<byte[]> ReadBody(HttpRequest request, long maxBytes, CancellationToken ct)
    {
        using var buffer = new MemoryStream();
        var chunk = new byte[16384];
        int n;
        while ((n = await request.Body.ReadAsync(chunk, ct)) > 0)
        {
            if (buffer.Length + n > maxBytes) throw TooLarge(-1, maxBytes);
            buffer.Write(chunk, 0, n);
        }
        if (buffer.Length == 0) throw new BadInputException(400, "the request body is empty; " + Accepted);
        return buffer.ToArray();
    }

    private static async Task<RequestImage> ReadMultipart(HttpRequest request, DefenseModels model, long maxBytes, long? querySeed, CancellationToken ct)
    {
        IFormCollection form;
        try
        {
            request.HttpContext.Features.Set<IFormFeature>(new FormFeature(request, new FormOptions
            {
                MultipartBodyLengthLimit = maxBytes,
                ValueCountLimit = 16,
                BufferBody = false,
            }));
            form = await request.ReadFormAsync(ct);
        }
        catch (InvalidDataException e) when (e.Message.Contains("limit", StringComparison.OrdinalIgnoreCase))
        {
            throw TooLarge(request.ContentLength ?? -1, maxBytes);
        }
        catch (Exception e) when (e is InvalidDataException or IOException && !ct.IsCancellationRequested)
        {
            throw new BadInputException(400, $"malformed multipart body: {e.Message}");
        }
        var file = form.Files.GetFile("image") ?? (form.Files.Count == 1 ? form.Files[0] : null)
            ?? throw new BadInputException(400, form.Files.Count == 0
                ? "the multipart body has no file; put the image in the field 'image'"
                : "the multipart body has several files and none named 'image'");
        if (file.Length > maxBytes) throw TooLarge(file.Length, maxBytes);
        if (file.Length == 0) throw new BadInputException(400, "the uploaded file is empty");
        byte[] bytes;
        using (var s = new MemoryStream())
        {
            await file.CopyToAsync(s, ct);
            bytes = s.ToArray();
        }
        long? seed = ParseSeed(form["seed"].ToString(), "form field 'seed'") ?? querySeed;
        return new RequestImage(DecodeImage(bytes, model, $"the uploaded file '{BadInputException.OneLine(file.FileName)}'"), seed);
    }

    internal static float[] DecodeImage(byte[] bytes, DefenseModels model, string source)
    {
        (float[] Pixels, int Height, int Width) image;
        try
        {
            image = PngImages.Decode(bytes, model.Channels, source);
        }
        catch (AdpException e)
        {
            throw new BadInputException(400, e.Message);
        }
        if (image.Height != model.ImageSize || image.Width != model.ImageSize)
            throw new BadInputException(422, $"{source} is {image.Width}×{image.Height} pixels; this model takes " +
                                             $"{model.ImageSize}×{model.ImageSize} images ({Channels(model.Channels)})");
        return image.Pixels;
    }

    private static string Channels(int c) => c == 1 ? "1 channel, grey" : $"{c} channels, RGB";

    internal static RequestImage ReadJson(byte[] body, DefenseModels model, long? querySeed)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(body, new JsonDocumentOptions { MaxDepth = 8 });
        }
        catch (JsonException e)
        {
            throw new BadInputException(400, $"malformed JSON: {e.Message}");
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new BadInputException(400, $"expected a JSON object {{\"pixels\": [...], \"seed\": N}}, got a JSON {Kind(root.ValueKind)}");
            if (!root.TryGetProperty("pixels", out var pixels))
                throw new BadInputException(400, $"the JSON object has no \"pixels\"; expected {model.ShapeText} values in [0, 1] " +
                                                 "(channels × height × width, nested or flat)");
            long? seed = querySeed;
            if (root.TryGetProperty("seed", out var s) && s.ValueKind != JsonValueKind.Null)
                seed = s.ValueKind == JsonValueKind.Number && s.TryGetInt64(out long v) && v is >= 0 and <= MaxSeed
                    ? v
                    : throw new BadInputException(400, $"\"seed\": expected an integer in [0, {MaxSeed}], got {BadInputException.OneLine(s.GetRawText())}");
            return new RequestImage(Pixels(pixels, model), seed);
        }
    }

    private static string Kind(JsonValueKind k) => k.ToString().ToLowerInvariant();

    /// <summary>The pixel values of a C×H×W or H×W nested array or a flat C·H·W array, checked against the model.</summary>
    private static float[] Pixels(JsonElement pixels, DefenseModels model)
    {
        if (pixels.ValueKind != JsonValueKind.Array)
            throw new BadInputException(400, $"\"pixels\": expected an array of {model.ShapeText} numbers in [0, 1], got a JSON {Kind(pixels.ValueKind)}");
        // Shape from the first element at each depth; every array is then checked against it.
        var shape = new List<int>();
        for (var e = pixels; e.ValueKind == JsonValueKind.Array; e = e.GetArrayLength() > 0 ? e[0] : default)
        {
            shape.Add(e.GetArrayLength());
            if (e.GetArrayLength() == 0) break;
        }
        int c = model.Channels, size = model.ImageSize;
        string expected = $"this model takes {model.ShapeText} values in [0, 1] ({Channels(c)}; as C×H×W{(c == 1 ? " or H×W" : "")} nested arrays or a flat array of {model.PixelCount})";
        string got = string.Join("×", shape);
        bool fits = shape.Count switch
        {
            1 => shape[0] == model.PixelCount,
            2 => c == 1 && shape[0] == size && shape[1] == size,
            3 => shape[0] == c && shape[1] == size && shape[2] == size,
            _ => false,
        };
        if (!fits) throw new BadInputException(422, $"\"pixels\" is {got}{(shape.Count == 1 ? " values" : "")}; {expected}");
        var data = new float[model.PixelCount];
        int written = 0;
        Fill(pixels, 0, "pixels");
        return data;

        void Fill(JsonElement e, int depth, string where)
        {
            if (depth == shape.Count)
            {
                if (e.ValueKind != JsonValueKind.Number || !e.TryGetDouble(out double v) || !double.IsFinite(v) || v < 0 || v > 1)
                    throw new BadInputException(400, $"{where}: expected a number in [0, 1], got {Short(e)}");
                data[written++] = (float)v;
                return;
            }
            if (e.ValueKind != JsonValueKind.Array || e.GetArrayLength() != shape[depth])
                throw new BadInputException(422, $"{where}: expected an array of {shape[depth]} (ragged or mis-shaped \"pixels\"); {expected}");
            int i = 0;
            foreach (var child in e.EnumerateArray()) Fill(child, depth + 1, $"{where}[{i++}]");
        }
    }

    private static string Short(JsonElement e)
    {
        var raw = BadInputException.OneLine(e.GetRawText());
        return raw.Length > 40 ? raw[..40] + "…" : raw;
    }

    internal static long? ParseSeed(string text, string where)
    {
        if (string.IsNullOrWhiteSpace(text)) return null;
        return long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out long v) && v <= MaxSeed
            ? v
            : throw new BadInputException(400, $"{where}: expected an integer in [0, {MaxSeed}], got '{BadInputException.OneLine(text.Length > 40 ? text[..40] + "…" : text)}'");
    }
}
