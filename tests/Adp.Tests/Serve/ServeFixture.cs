using System.Net.Http.Headers;
using System.Text.Json;
using Adp.Data;
using Adp.Models;
using Adp.Purification;
using Adp.Serving;
using Adp.Serving.Batching;
using Adp.Serving.Hosting;
using Adp.Serving.Inference;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using static TorchSharp.torch;

namespace Adp.Tests.Serve;

/// <summary>The serve tests share one loaded defense (the shipped Fashion-MNIST models, S = 2 runs of T = 3 steps to
/// keep them fast) and run one after another: only one batch worker uses the networks at a time. They also run apart from
/// every other test (no parallelization): a gradient computed by a test on another thread switches oneDNN off process-wide
/// (NativeRuntime), and a forward pass on other kernels agrees only to float rounding, while these tests check that a seed
/// reproduces an answer exactly, as it does in `adp serve`, which computes no gradients.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ServeCollection : ICollectionFixture<ServeFixture>
{
    public const string Name = "serve";
}

public sealed class ServeFixture : IDisposable
{
    public const int Runs = 2, Steps = 3;

    public ServeFixture()
    {
        var (clf, cinfo) = ClassifierFile.Load(TestEnvironment.Model("fashion-mnist-smallcnn.ckpt"));
        var (net, sinfo) = ScoreModelFile.Load(TestEnvironment.Model("fashion-mnist-score.ckpt"));
        Models = new DefenseModels(clf, cinfo, net, sinfo, "paper", PurifierPresets.Get("paper") with { Steps = Steps }, Runs, DecisionRule.MeanSoftmax);
        using var test = EmbeddedData.LoadTest(DatasetRegistry.FashionMnist);
        Labels = test.Labels.narrow(0, 0, 16).data<long>().Select(l => (int)l).ToArray();
        for (int i = 0; i < 16; i++)
        {
            using var x = test.Images(i, 1);
            Pngs.Add(PngImages.Encode(x));
            Pixels.Add(x.data<float>().ToArray());
        }
    }

    public DefenseModels Models { get; }

    /// <summary>The first 16 Fashion-MNIST test images as PNG files, their pixels and labels. Image 1 (a pullover)
    /// is one the defense gets right at these settings with a wide margin.</summary>
    public List<byte[]> Pngs { get; } = [];
    public List<float[]> Pixels { get; } = [];
    public int[] Labels { get; }

    public void Dispose() => Models.Dispose();
}

/// <summary>A service over the fixture's models: in-process (TestServer) or on a loopback port (Kestrel).</summary>
public sealed class ServeApp : IAsyncDisposable
{
    private ServeApp(WebApplication app, HttpClient client)
    {
        App = app;
        Client = client;
    }

    public WebApplication App { get; }
    public HttpClient Client { get; }
    public BatchWorker Worker => App.Services.GetRequiredService<BatchWorker>();
    public BatchQueue Queue => App.Services.GetRequiredService<BatchQueue>();

    public static async Task<ServeApp> StartInProcess(DefenseModels models, ServeOptions? options = null)
    {
        var app = ServeHost.Build(models, (options ?? new ServeOptions()) with { Logging = false }, b => b.WebHost.UseTestServer());
        await app.StartAsync();
        var client = app.GetTestClient();
        client.Timeout = TimeSpan.FromMinutes(2);
        return new ServeApp(app, client);
    }

    public static async Task<ServeApp> StartOnLoopback(DefenseModels models, ServeOptions? options = null)
    {
        var app = ServeHost.Build(models, (options ?? new ServeOptions()) with { Logging = false, Urls = ["http://127.0.0.1:0"] });
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new ServeApp(app, new HttpClient { BaseAddress = new Uri(address), Timeout = TimeSpan.FromMinutes(2) });
    }

    public Uri BaseAddress => Client.BaseAddress ?? new Uri("http://localhost/");

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try { await App.StopAsync(stop.Token); } catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException) { }
        await App.DisposeAsync();
    }
}

/// <summary>Request builders and answer checks.</summary>
public static class ServeHttp
{
    public static HttpContent Png(byte[] png, string type = "image/png")
    {
        var c = new ByteArrayContent(png);
        c.Headers.ContentType = new MediaTypeHeaderValue(type);
        return c;
    }

    public static HttpContent Multipart(byte[] png, long? seed = null, string field = "image")
    {
        var form = new MultipartFormDataContent();
        var file = new ByteArrayContent(png);
        file.Headers.ContentType = new MediaTypeHeaderValue("image/png");
        form.Add(file, field, "upload.png");
        if (seed is not null) form.Add(new StringContent(seed.Value.ToString()), "seed");
        return form;
    }

    public static HttpContent Json(string json) => new StringContent(json, System.Text.Encoding.UTF8, "application/json");

    public static string PixelsJson(float[] pixels, long? seed = null) =>
        JsonSerializer.Serialize(new { pixels = pixels.Select(v => (double)v).ToArray(), seed });

    public static async Task<JsonElement> OkJson(HttpResponseMessage r)
    {
        var body = await r.Content.ReadAsStringAsync();
        Assert.True(r.IsSuccessStatusCode, $"HTTP {(int)r.StatusCode}: {body}");
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    /// <summary>Asserts a refusal: the status, and a body of one line of JSON, {"error": "…", "status": N}, whose error
    /// contains every one of <paramref name="phrases"/>.</summary>
    public static async Task<string> AssertRefused(HttpResponseMessage r, int status, params string[] phrases)
    {
        var body = await r.Content.ReadAsStringAsync();
        Assert.True((int)r.StatusCode == status, $"expected HTTP {status}, got {(int)r.StatusCode}: {body}");
        Assert.StartsWith("application/json", r.Content.Headers.ContentType?.ToString());
        Assert.Single(body.TrimEnd('\n').Split('\n'));
        var json = JsonDocument.Parse(body).RootElement;
        var error = json.GetProperty("error").GetString()!;
        Assert.Equal(status, json.GetProperty("status").GetInt32());
        foreach (var p in phrases) Assert.Contains(p, error);
        return error;
    }

    public static float[] Floats(JsonElement array) => array.EnumerateArray().Select(e => e.GetSingle()).ToArray();
    public static int[] Ints(JsonElement array) => array.EnumerateArray().Select(e => e.GetInt32()).ToArray();

    /// <summary>A PNG of any size, grey, made with SkiaSharp.</summary>
    public static byte[] GreyPng(int width, int height, byte value = 128)
    {
        using var bmp = new SkiaSharp.SKBitmap(width, height, SkiaSharp.SKColorType.Gray8, SkiaSharp.SKAlphaType.Opaque);
        bmp.Erase(new SkiaSharp.SKColor(value, value, value));
        using var data = bmp.Encode(SkiaSharp.SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }

    /// <summary>The image re-encoded as JPEG.</summary>
    public static byte[] Jpeg(byte[] png)
    {
        using var bmp = SkiaSharp.SKBitmap.Decode(png);
        using var data = bmp.Encode(SkiaSharp.SKEncodedImageFormat.Jpeg, 95);
        return data.ToArray();
    }
}
