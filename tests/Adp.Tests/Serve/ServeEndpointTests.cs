using System.Text.Json;
using Adp.Data;
using static Adp.Tests.Serve.ServeHttp;
using static TorchSharp.torch;

namespace Adp.Tests.Serve;

/// <summary>The endpoints of `adp serve` (issue 14) on an in-process test server over the shipped Fashion-MNIST models.</summary>
[Collection(ServeCollection.Name)]
public class ServeEndpointTests(ServeFixture f)
{
    [Fact]
    public async Task ClassifyPngReturnsLabelProbabilitiesVotesAndSettings()
    {
        await using var s = await ServeApp.StartInProcess(f.Models);
        var r = await OkJson(await s.Client.PostAsync("/v1/classify?seed=7", Png(f.Pngs[1])));
        int label = r.GetProperty("label").GetInt32();
        var classes = r.GetProperty("classes").EnumerateArray().Select(c => c.GetString()!).ToArray();
        Assert.Equal(DatasetRegistry.FashionMnist.ClassNames, classes);
        Assert.Equal(classes[label], r.GetProperty("className").GetString());
        Assert.Equal(f.Labels[1], label);   // a pullover, classified with a wide margin
        var p = Floats(r.GetProperty("probabilities"));
        Assert.Equal(10, p.Length);
        Assert.Equal(1.0, p.Sum(), 4);
        Assert.Equal(p.Max(), p[label]);
        var votes = Ints(r.GetProperty("votes"));
        Assert.Equal(ServeFixture.Runs, votes.Length);
        Assert.All(Ints(r.GetProperty("steps")), t => Assert.InRange(t, 0, ServeFixture.Steps));
        Assert.Equal(7, r.GetProperty("seed").GetInt64());
        var settings = r.GetProperty("settings");
        Assert.Equal("paper", settings.GetProperty("preset").GetString());
        Assert.Equal(ServeFixture.Runs, settings.GetProperty("runs").GetInt32());
        Assert.Equal(ServeFixture.Steps, settings.GetProperty("steps").GetInt32());
        Assert.Equal(0.25, settings.GetProperty("sigma").GetDouble());
        Assert.Equal("MeanSoftmax", settings.GetProperty("rule").GetString());
        Assert.Equal([1, 28, 28], Ints(settings.GetProperty("shape")));
        Assert.Equal(1, r.GetProperty("batch").GetProperty("size").GetInt32());
    }

    [Fact]
    public async Task TheSameImageAndSeedGiveTheSameAnswerInEveryForm()
    {
        await using var s = await ServeApp.StartInProcess(f.Models);
        var png = await OkJson(await s.Client.PostAsync("/v1/classify?seed=42", Png(f.Pngs[3])));
        var again = await OkJson(await s.Client.PostAsync("/v1/classify?seed=42", Png(f.Pngs[3])));
        var form = await OkJson(await s.Client.PostAsync("/v1/classify", Multipart(f.Pngs[3], seed: 42)));
        var json = await OkJson(await s.Client.PostAsync("/v1/classify", Json(PixelsJson(f.Pixels[3], seed: 42))));
        var jpeg = await OkJson(await s.Client.PostAsync("/v1/classify?seed=42", Png(Jpeg(f.Pngs[3]), "image/jpeg")));
        foreach (var other in new[] { again, form, json })
        {
            Assert.Equal(42, other.GetProperty("seed").GetInt64());
            Assert.Equal(png.GetProperty("label").GetInt32(), other.GetProperty("label").GetInt32());
            Assert.Equal(Ints(png.GetProperty("votes")), Ints(other.GetProperty("votes")));
            var (a, b) = (Floats(png.GetProperty("probabilities")), Floats(other.GetProperty("probabilities")));
            for (int k = 0; k < a.Length; k++) Assert.Equal(a[k], b[k], 5);
        }
        Assert.Equal(10, Floats(jpeg.GetProperty("probabilities")).Length);   // JPEG decodes (lossy, so not compared)
        // Without a seed the service draws one and reports it; sending it back reproduces the answer.
        var random = await OkJson(await s.Client.PostAsync("/v1/classify", Png(f.Pngs[3])));
        long seed = random.GetProperty("seed").GetInt64();
        var replay = await OkJson(await s.Client.PostAsync($"/v1/classify?seed={seed}", Png(f.Pngs[3])));
        Assert.Equal(Floats(random.GetProperty("probabilities")), Floats(replay.GetProperty("probabilities")));
    }

    [Fact]
    public async Task PurifyReturnsThePurifiedImageAsPng()
    {
        await using var s = await ServeApp.StartInProcess(f.Models);
        var r = await s.Client.PostAsync("/v1/purify?seed=3", Png(f.Pngs[0]));
        Assert.True(r.IsSuccessStatusCode, await r.Content.ReadAsStringAsync());
        Assert.Equal("image/png", r.Content.Headers.ContentType?.MediaType);
        Assert.Equal("3", r.Headers.GetValues("X-Adp-Seed").Single());
        Assert.InRange(int.Parse(r.Headers.GetValues("X-Adp-Steps-Taken").Single()), 0, ServeFixture.Steps);
        var (pixels, h, w) = PngImages.Decode(await r.Content.ReadAsByteArrayAsync(), 1, "answer");
        Assert.Equal((28, 28), (h, w));
        Assert.NotEqual(f.Pixels[0], pixels);
    }

    [Fact]
    public async Task PurifyWithTrajectoryReturnsTheNoisyStartAndEveryStep()
    {
        await using var s = await ServeApp.StartInProcess(f.Models);
        var r = await OkJson(await s.Client.PostAsync("/v1/purify?trajectory=true&seed=9", Multipart(f.Pngs[0])));
        var frames = r.GetProperty("trajectory").EnumerateArray().Select(e => e.GetBytesFromBase64()).ToArray();
        Assert.Equal(ServeFixture.Steps + 1, frames.Length);
        foreach (var frame in frames) Assert.Equal((28, 28), (PngImages.Decode(frame, 1, "frame").Height, PngImages.Decode(frame, 1, "frame").Width));
        Assert.Equal(frames[^1], r.GetProperty("purified").GetBytesFromBase64());
        Assert.NotEqual(frames[0], frames[^1]);
        Assert.Equal(9, r.GetProperty("seed").GetInt64());
        // The same seed without the trajectory gives the same image.
        var plain = await s.Client.PostAsync("/v1/purify?seed=9", Png(f.Pngs[0]));
        Assert.Equal(frames[^1], await plain.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task PurifyShowsWhatTheFirstVoteOfClassifySaw()
    {
        await using var s = await ServeApp.StartInProcess(f.Models);
        foreach (int i in new[] { 1, 2, 5 })
        {
            var c = await OkJson(await s.Client.PostAsync("/v1/classify?seed=123", Png(f.Pngs[i])));
            var p = await s.Client.PostAsync("/v1/purify?seed=123", Png(f.Pngs[i]));
            var (pixels, _, _) = PngImages.Decode(await p.Content.ReadAsByteArrayAsync(), 1, "purified");
            long bare;
            using (no_grad())
            using (var x = tensor(pixels, [1, 1, 28, 28]))
            using (var logits = f.Models.Classifier.forward(x))
                bare = logits.argmax(1).item<long>();
            Assert.Equal(Ints(c.GetProperty("votes"))[0], (int)bare);
        }
    }

    [Fact]
    public async Task HealthInfoMetricsOpenApiReferenceAndPage()
    {
        await using var s = await ServeApp.StartInProcess(f.Models);
        var health = await OkJson(await s.Client.GetAsync("/healthz"));
        Assert.Equal("ok", health.GetProperty("status").GetString());
        Assert.True(health.GetProperty("modelsLoaded").GetBoolean());
        var info = await OkJson(await s.Client.GetAsync("/v1/info"));
        Assert.Equal(32, info.GetProperty("maxBatch").GetInt32());
        Assert.Equal("fashion-mnist", info.GetProperty("settings").GetProperty("dataset").GetString());

        await OkJson(await s.Client.PostAsync("/v1/classify", Png(f.Pngs[0])));
        var metrics = await s.Client.GetStringAsync("/metrics");
        foreach (var m in new[] { "adp_batch_size_images_count 1", "adp_queue_length 0", "adp_images_total{kind=\"classify\"} 1",
                     "adp_images_per_second", "adp_queue_wait_seconds_bucket", "http_request_duration_seconds_bucket", "http_requests_received_total" })
            Assert.Contains(m, metrics);
        Assert.Contains("endpoint=\"/v1/classify\"", metrics);

        var doc = JsonDocument.Parse(await s.Client.GetStringAsync("/openapi/v1.json")).RootElement;
        var paths = doc.GetProperty("paths");
        foreach (var p in new[] { "/v1/classify", "/v1/purify", "/v1/info", "/healthz" }) Assert.True(paths.TryGetProperty(p, out _), p);
        var content = paths.GetProperty("/v1/classify").GetProperty("post").GetProperty("requestBody").GetProperty("content");
        foreach (var t in new[] { "image/png", "image/jpeg", "multipart/form-data", "application/json" }) Assert.True(content.TryGetProperty(t, out _), t);

        var reference = await s.Client.GetAsync("/scalar/");
        Assert.True(reference.IsSuccessStatusCode);
        Assert.Contains("scalar.js", await reference.Content.ReadAsStringAsync());
        Assert.True((await s.Client.GetAsync("/scalar/scalar.js")).IsSuccessStatusCode);   // served from the package, no CDN
        var page = await s.Client.GetStringAsync("/");
        Assert.Contains("id=\"file\"", page);
        Assert.Contains("/v1/purify?trajectory=true", page);
    }
}
