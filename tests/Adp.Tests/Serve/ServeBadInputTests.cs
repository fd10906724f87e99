using System.Net.Http.Headers;
using Adp.Serving;
using static Adp.Tests.Serve.ServeHttp;

namespace Adp.Tests.Serve;

/// <summary>Bad input gets a 4xx and one line of JSON saying what was wrong and what was expected, and the service
/// goes on serving (issue 14): every test ends with a good request on the same service.</summary>
[Collection(ServeCollection.Name)]
public class ServeBadInputTests(ServeFixture f)
{
    private const long Limit = 65536;

    private async Task Refused(Func<HttpClient, Task<HttpResponseMessage>> send, int status, params string[] phrases)
    {
        await using var s = await ServeApp.StartInProcess(f.Models, new ServeOptions { MaxUploadBytes = Limit });
        await AssertRefused(await send(s.Client), status, phrases);
        await AssertStillServes(s);
    }

    private async Task AssertStillServes(ServeApp s)
    {
        var ok = await OkJson(await s.Client.PostAsync("/v1/classify?seed=1", Png(f.Pngs[1])));
        Assert.Equal(f.Labels[1], ok.GetProperty("label").GetInt32());
        var metrics = await s.Client.GetStringAsync("/metrics");
        Assert.Contains("adp_bad_input_total", metrics);
    }

    [Fact]
    public Task NotAnImage() =>
        Refused(c => c.PostAsync("/v1/classify", Png("this is not a PNG file"u8.ToArray())), 400, "not a readable PNG/JPEG image");

    [Fact]
    public Task NotAnImageInAMultipartUpload() =>
        Refused(c => c.PostAsync("/v1/purify", Multipart("%PDF-1.4, not a picture"u8.ToArray())), 400, "'upload.png'", "not a readable PNG/JPEG image");

    [Fact]
    public Task TruncatedPng() =>
        Refused(c => c.PostAsync("/v1/classify", Png(f.Pngs[0][..(f.Pngs[0].Length * 2 / 3)])), 400, "truncated");

    [Fact]
    public Task WrongSize() =>
        Refused(c => c.PostAsync("/v1/classify", Png(GreyPng(32, 32))), 422, "is 32×32 pixels", "this model takes 28×28 images (1 channel, grey)");

    [Fact]
    public Task WrongSizeOnPurify() =>
        Refused(c => c.PostAsync("/v1/purify", Png(GreyPng(28, 27))), 422, "is 28×27 pixels", "28×28");

    [Fact]
    public Task WrongChannels() =>
        Refused(c => c.PostAsync("/v1/classify", Json(PixelsJson([.. f.Pixels[0], .. f.Pixels[1], .. f.Pixels[2]]))), 422,
            "\"pixels\" is 2352 values", "this model takes 1×28×28 values in [0, 1] (1 channel, grey");

    [Fact]
    public Task WrongChannelsNested() =>
        Refused(c => c.PostAsync("/v1/classify", Json("{\"pixels\": " + Nested(3, 28, 28) + "}")), 422, "\"pixels\" is 3×28×28", "1×28×28");

    [Fact]
    public Task RaggedPixels() =>
        Refused(c => c.PostAsync("/v1/classify", Json("{\"pixels\": [" + string.Join(",", Enumerable.Repeat(Nested(28), 27)) + "," + Nested(27) + "]}")),
            422, "pixels[27]: expected an array of 28");

    [Fact]
    public Task PixelOutOfRange() =>
        Refused(c => c.PostAsync("/v1/classify", Json("{\"pixels\": " + Nested(28, 28).Replace("0.5", "255") + "}")), 400,
            "pixels[0][0]: expected a number in [0, 1], got 255");

    [Fact]
    public Task OverTheUploadLimit() =>
        Refused(c => c.PostAsync("/v1/classify", Png(new byte[Limit + 1])), 413, "65,537 bytes", "the limit is 65,536 bytes");

    [Fact]
    public Task OverTheUploadLimitInAMultipartUpload() =>
        Refused(c => c.PostAsync("/v1/classify", Multipart(new byte[3 * Limit])), 413, "the limit is 65,536 bytes");

    [Fact]
    public Task OverTheUploadLimitWithoutContentLength() =>
        Refused(c =>
        {
            var content = new UnknownLength(new byte[2 * Limit]);
            content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            return c.PostAsync("/v1/classify", content);
        }, 413, "the limit is 65,536 bytes");

    [Fact]
    public Task WrongContentType() =>
        Refused(c => c.PostAsync("/v1/classify", new StringContent("hello", System.Text.Encoding.UTF8, "text/plain")), 415,
            "unsupported Content-Type 'text/plain'", "image/png", "multipart/form-data", "application/json");

    [Fact]
    public Task NoContentType() =>
        Refused(c => c.PostAsync("/v1/purify", new ByteArrayContent(f.Pngs[0])), 415, "no Content-Type");

    [Fact]
    public Task MalformedJson() =>
        Refused(c => c.PostAsync("/v1/classify", Json("{\"pixels\": [0.1, 0.2")), 400, "malformed JSON");

    [Fact]
    public Task JsonWithoutPixels() =>
        Refused(c => c.PostAsync("/v1/classify", Json("{\"pixles\": []}")), 400, "no \"pixels\"", "1×28×28");

    [Fact]
    public Task JsonThatIsNotAnObject() =>
        Refused(c => c.PostAsync("/v1/classify", Json("[1, 2, 3]")), 400, "expected a JSON object");

    [Fact]
    public Task BadSeed() =>
        Refused(c => c.PostAsync("/v1/classify?seed=-4", Png(f.Pngs[0])), 400, "query parameter 'seed'", "-4");

    [Fact]
    public Task BadSeedInJson() =>
        Refused(c => c.PostAsync("/v1/classify", Json(PixelsJson(f.Pixels[0]).Replace("\"seed\":null", "\"seed\":\"x\""))), 400, "\"seed\"");

    [Fact]
    public Task EmptyBody() =>
        Refused(c => c.PostAsync("/v1/classify", Png([])), 400, "empty");

    [Fact]
    public Task MultipartWithoutAFile() =>
        Refused(c => c.PostAsync("/v1/classify", new MultipartFormDataContent { { new StringContent("5"), "seed" } }), 400, "no file", "'image'");

    [Fact]
    public Task BadTrajectoryFlag() =>
        Refused(c => c.PostAsync("/v1/purify?trajectory=yes", Png(f.Pngs[0])), 400, "'trajectory'");

    [Fact]
    public Task UnknownEndpointAndMethod() =>
        Refused(async c =>
        {
            await AssertRefused(await c.GetAsync("/v1/classify"), 405, "GET is not allowed");
            return await c.PostAsync("/v2/classify", Png(f.Pngs[0]));
        }, 404, "no such endpoint: /v2/classify");

    /// <summary>A body sent without a Content-Length (chunked).</summary>
    private sealed class UnknownLength(byte[] bytes) : HttpContent
    {
        protected override Task SerializeToStreamAsync(Stream stream, System.Net.TransportContext? context) => stream.WriteAsync(bytes).AsTask();
        protected override bool TryComputeLength(out long length)
        {
            length = -1;
            return false;
        }
    }

    private static string Nested(params int[] shape) => shape.Length == 0
        ? "0.5"
        : "[" + string.Join(",", Enumerable.Repeat(Nested(shape[1..]), shape[0])) + "]";
}
