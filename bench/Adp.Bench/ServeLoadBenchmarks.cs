using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text.Json;
using Adp.Data;

namespace Adp.Bench;

/// <summary>
/// Load test of a running `adp serve` (issue 14): at each level, C clients send R classify requests in all (a PNG
/// body per request, test images in turn, seed = request number), each client sending its next request when the
/// last one is answered. Prints images/s (answered requests over the wall time of the level), p50 and p99 latency,
/// errors (any answer but 200, or a timeout), and the mean batch size the service reports. Loopback only, bounded
/// in requests and time.
/// </summary>
public static class ServeLoadBenchmarks
{
    public static int Load(Dictionary<string, string> kv)
    {
        var url = new Uri(kv.GetValueOrDefault("url", "http://127.0.0.1:5077"));
        if (!url.IsLoopback) throw new ArgumentException($"url={url}: the load test only talks to loopback addresses");
        var clients = kv.GetValueOrDefault("clients", "1,8,32").Split(',').Select(int.Parse).ToArray();
        var requests = kv.GetValueOrDefault("requests", "8,32,96").Split(',').Select(int.Parse).ToArray();
        if (requests.Length != clients.Length) throw new ArgumentException("requests= needs one count per level of clients=");
        int warmup = int.Parse(kv.GetValueOrDefault("warmup", "2"));
        var timeout = TimeSpan.FromSeconds(double.Parse(kv.GetValueOrDefault("timeout", "600"), System.Globalization.CultureInfo.InvariantCulture));
        var spec = DatasetRegistry.Get(kv.GetValueOrDefault("dataset", "fashion-mnist"));
        using var test = EmbeddedData.LoadTest(spec);
        var pngs = Enumerable.Range(0, 100).Select(i => { using var x = test.Images(i, 1); return PngImages.Encode(x); }).ToArray();

        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 256, UseProxy = false }) { BaseAddress = url, Timeout = timeout };
        async Task<(bool Ok, double Ms, int Batch)> Send(int i)
        {
            var content = new ByteArrayContent(pngs[i % pngs.Length]);
            content.Headers.ContentType = new MediaTypeHeaderValue("image/png");
            var sw = Stopwatch.StartNew();
            try
            {
                using var r = await http.PostAsync($"/v1/classify?seed={i}", content);
                var body = await r.Content.ReadAsStringAsync();
                sw.Stop();
                if (!r.IsSuccessStatusCode)
                {
                    Console.Error.WriteLine($"request {i}: HTTP {(int)r.StatusCode} {body.Trim()}");
                    return (false, sw.Elapsed.TotalMilliseconds, 0);
                }
                using var doc = JsonDocument.Parse(body);
                return (true, sw.Elapsed.TotalMilliseconds, doc.RootElement.GetProperty("batch").GetProperty("size").GetInt32());
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                Console.Error.WriteLine($"request {i}: {e.GetType().Name}: {e.Message}");
                return (false, sw.Elapsed.TotalMilliseconds, 0);
            }
        }

        for (int i = 0; i < warmup; i++) Send(1_000_000 + i).GetAwaiter().GetResult();
        int totalErrors = 0;
        int next = 0;
        for (int level = 0; level < clients.Length; level++)
        {
            int c = clients[level], n = requests[level], issued = 0;
            var results = new System.Collections.Concurrent.ConcurrentBag<(bool Ok, double Ms, int Batch)>();
            var wall = Stopwatch.StartNew();
            Task.WaitAll(Enumerable.Range(0, c).Select(_ => Task.Run(async () =>
            {
                while (Interlocked.Increment(ref issued) <= n) results.Add(await Send(Interlocked.Increment(ref next)));
            })).ToArray());
            wall.Stop();
            var ok = results.Where(r => r.Ok).Select(r => r.Ms).Order().ToArray();
            int errors = results.Count(r => !r.Ok);
            totalErrors += errors;
            double P(double q) => ok.Length == 0 ? double.NaN : ok[Math.Clamp((int)Math.Ceiling(q * ok.Length) - 1, 0, ok.Length - 1)];
            double meanBatch = results.Where(r => r.Ok).Select(r => (double)r.Batch).DefaultIfEmpty(double.NaN).Average();
            Console.WriteLine($"serve-load clients={c} requests={n} errors={errors} wall={wall.Elapsed.TotalSeconds:F1}s " +
                              $"images/s={ok.Length / wall.Elapsed.TotalSeconds:F2} p50={P(0.50):F0}ms p99={P(0.99):F0}ms max={P(1):F0}ms mean-batch={meanBatch:F1}");
        }
        return totalErrors == 0 ? 0 : 1;
    }
}
