using System.Diagnostics;
using Adp.Serving;
using Adp.Serving.Batching;
using static Adp.Tests.Serve.ServeHttp;

namespace Adp.Tests.Serve;

/// <summary>Dynamic batching, the bounded queue, and draining on shutdown (issue 14).</summary>
[Collection(ServeCollection.Name)]
public class ServeBatchingTests(ServeFixture f)
{
    /// <summary>Holds the worker before its first batch until released, so that tests can fill the queue.</summary>
    private sealed class Gate
    {
        private readonly ManualResetEventSlim _open = new();
        private int _batches;
        public void Install(BatchWorker w) => w.BeforeBatch = _ => { if (Interlocked.Increment(ref _batches) == 1) _open.Wait(TimeSpan.FromMinutes(2)); };
        public void Open() => _open.Set();
        public int Batches => _batches;
    }

    private static async Task Until(Func<bool> condition, string what)
    {
        var sw = Stopwatch.StartNew();
        while (!condition())
        {
            if (sw.Elapsed > TimeSpan.FromSeconds(30)) Assert.Fail($"timed out waiting until {what}");
            await Task.Delay(10);
        }
    }

    [Fact]
    public async Task ConcurrentRequestsArePurifiedTogetherAndGetTheAnswersTheyGetAlone()
    {
        await using var s = await ServeApp.StartInProcess(f.Models, new ServeOptions { MaxBatch = 8 });
        var alone = new List<System.Text.Json.JsonElement>();
        for (int i = 4; i < 9; i++) alone.Add(await OkJson(await s.Client.PostAsync($"/v1/classify?seed={100 + i}", Png(f.Pngs[i]))));

        var gate = new Gate();
        gate.Install(s.Worker);
        var first = s.Client.PostAsync("/v1/classify?seed=1", Png(f.Pngs[1]));
        await Until(() => gate.Batches == 1, "the worker holds the first request");
        // Five classify requests and one purify request queue up behind it and go through as one batch.
        var together = Enumerable.Range(4, 5).Select(i => s.Client.PostAsync($"/v1/classify?seed={100 + i}", Png(f.Pngs[i]))).ToList();
        var purify = s.Client.PostAsync("/v1/purify?seed=5", Png(f.Pngs[0]));
        await Until(() => s.Queue.Count == 6, "six requests are queued");
        gate.Open();
        await OkJson(await first);
        for (int j = 0; j < 5; j++)
        {
            var r = await OkJson(await together[j]);
            Assert.Equal(6, r.GetProperty("batch").GetProperty("size").GetInt32());
            Assert.Equal(alone[j].GetProperty("label").GetInt32(), r.GetProperty("label").GetInt32());
            Assert.Equal(Ints(alone[j].GetProperty("votes")), Ints(r.GetProperty("votes")));
            var (a, b) = (Floats(alone[j].GetProperty("probabilities")), Floats(r.GetProperty("probabilities")));
            for (int k = 0; k < a.Length; k++) Assert.Equal(a[k], b[k], 4);   // equal up to float rounding of the batched network
        }
        Assert.True((await purify).IsSuccessStatusCode);
        var metrics = await s.Client.GetStringAsync("/metrics");
        Assert.Contains("adp_batch_size_images_count 7", metrics);   // five alone, the held one, the batch of six
        Assert.Contains("adp_batch_size_images_bucket{le=\"4\"} 6", metrics);
    }

    [Fact]
    public async Task AFullQueueAnswers503WithRetryAfterAndTheServiceRecovers()
    {
        await using var s = await ServeApp.StartInProcess(f.Models, new ServeOptions { MaxBatch = 1, QueueCapacity = 2 });
        var gate = new Gate();
        gate.Install(s.Worker);
        var held = s.Client.PostAsync("/v1/classify", Png(f.Pngs[0]));
        await Until(() => gate.Batches == 1, "the worker holds the first request");
        var queued = new[] { s.Client.PostAsync("/v1/classify", Png(f.Pngs[1])), s.Client.PostAsync("/v1/purify", Png(f.Pngs[2])) };
        await Until(() => s.Queue.Count == 2, "the queue is full");
        var refused = await s.Client.PostAsync("/v1/classify", Png(f.Pngs[3]));
        await AssertRefused(refused, 503, "the queue is full (2 images waiting)", "retry after");
        Assert.InRange(int.Parse(refused.Headers.GetValues("Retry-After").Single()), 1, 600);
        Assert.Contains("adp_rejected_total 1", await s.Client.GetStringAsync("/metrics"));
        gate.Open();
        Assert.True((await held).IsSuccessStatusCode);
        foreach (var q in queued) Assert.True((await q).IsSuccessStatusCode);
        await OkJson(await s.Client.PostAsync("/v1/classify", Png(f.Pngs[3])));
    }

    [Fact]
    public async Task StoppingAnswersTheRequestsInFlightFirst()
    {
        var s = await ServeApp.StartOnLoopback(f.Models, new ServeOptions { MaxBatch = 1 });
        try
        {
            var gate = new Gate();
            gate.Install(s.Worker);
            var inFlight = new List<Task<HttpResponseMessage>> { s.Client.PostAsync("/v1/classify", Png(f.Pngs[0])) };
            await Until(() => gate.Batches == 1, "the worker holds the first request");
            inFlight.Add(s.Client.PostAsync("/v1/classify", Png(f.Pngs[1])));
            inFlight.Add(s.Client.PostAsync("/v1/purify", Png(f.Pngs[2])));
            await Until(() => s.Queue.Count == 2, "two more requests are queued");
            var stopping = s.App.StopAsync();   // what Ctrl-C and SIGTERM do
            await Task.Delay(200);
            Assert.False(stopping.IsCompleted, "the service stopped with requests in flight");
            gate.Open();
            foreach (var r in inFlight) Assert.True((await r).IsSuccessStatusCode, await (await r).Content.ReadAsStringAsync());
            await stopping.WaitAsync(TimeSpan.FromSeconds(60));
            Assert.True(s.Queue.Closed);
        }
        finally
        {
            await s.DisposeAsync();
        }
    }

    /// <summary>The real `adp serve` process: SIGTERM while a batch is on the model; every request in flight is answered
    /// and the process exits 0.</summary>
    [Fact]
    public async Task ServeCommandDrainsOnSigterm()
    {
        if (!OperatingSystem.IsLinux()) return;
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "adp.dll"), "--threads", "1", "serve",
                     "--classifier", TestEnvironment.Model("fashion-mnist-smallcnn.ckpt"), "--score", TestEnvironment.Model("fashion-mnist-score.ckpt"),
                     "--urls", "http://127.0.0.1:0", "--runs", "4", "--steps", "10", "--max-wait-ms", "200" })
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        var lines = new List<string>();
        string? url = null;
        try
        {
            while (url is null && await p.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60)) is { } line)
            {
                lines.Add(line);
                if (line.Contains("listening on ")) url = line.Split("listening on ")[1].Split(' ')[0];
            }
            if (url is null) Assert.Fail("no 'listening on' line: " + string.Join("\n", lines) + await stderr);
            var stdout = p.StandardOutput.ReadToEndAsync();
            using var client = new HttpClient { BaseAddress = new Uri(url!), Timeout = TimeSpan.FromMinutes(2) };
            var requests = Enumerable.Range(0, 6).Select(i => client.PostAsync($"/v1/classify?seed={i}", Png(f.Pngs[i]))).ToList();
            // Once the batch is on the model (the queue has emptied into it), send SIGTERM.
            await Until(() => Metric(client, "adp_queue_wait_seconds_count") >= 6, "the six requests reach the model");
            using (var kill = Process.Start("kill", ["-TERM", p.Id.ToString()])) kill.WaitForExit();
            foreach (var r in requests)
            {
                var answer = await r;
                Assert.True(answer.IsSuccessStatusCode, $"HTTP {(int)answer.StatusCode}: {await answer.Content.ReadAsStringAsync()}");
            }
            await p.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
            Assert.Equal(0, p.ExitCode);
            Assert.Contains("adp serve: stopped", await stdout);
        }
        finally
        {
            if (!p.HasExited) p.Kill();
        }
    }

    private static double Metric(HttpClient client, string name)
    {
        var text = client.GetStringAsync("/metrics").GetAwaiter().GetResult();
        var line = text.Split('\n').FirstOrDefault(l => l.StartsWith(name + " "));
        return line is null ? 0 : double.Parse(line.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
    }
}
