using System.Diagnostics;
using Adp.Serving.Batching;
using Adp.Serving.Inference;
using Adp.Serving.Input;
using Adp.Serving.Monitoring;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Adp.Serving.Api;

/// <summary>The HTTP API: /v1/classify, /v1/purify, /v1/info, /healthz.</summary>
public static class Endpoints
{
    public static void MapAdpApi(this IEndpointRouteBuilder app)
    {
        var v1 = app.MapGroup("/v1").WithTags("defense");
        v1.MapPost("/classify", Classify)
            .WithName("classify")
            .WithSummary("Classify an image with the purification defense")
            .WithDescription("S purification runs of the image (noise injection, then adaptive steps along the score), each classified; " +
                             "the decision rule combines them. Body: image/png or image/jpeg, multipart/form-data (field 'image', optional 'seed'), " +
                             "or application/json {\"pixels\": [...], \"seed\": N}. ?seed=N fixes the noise (default: random; the answer reports it).")
            .Produces<ClassifyResponse>()
            .Produces<ErrorResponse>(400).Produces<ErrorResponse>(413).Produces<ErrorResponse>(415).Produces<ErrorResponse>(422).Produces<ErrorResponse>(503)
            .WithMetadata(new RequestSizeNote());
        v1.MapPost("/purify", Purify)
            .WithName("purify")
            .WithSummary("Purify an image; the purified image as PNG, or every step as JSON")
            .WithDescription("One purification run (the noise of run 1 of /v1/classify with the same seed). The body is as for /v1/classify. " +
                             "Default answer: image/png, with headers X-Adp-Seed and X-Adp-Steps-Taken. ?trajectory=true answers JSON with the noisy start " +
                             "and every step's iterate as base64 PNGs.")
            .Produces(200, contentType: "image/png")
            .Produces<PurifyResponse>(200, "application/json")
            .Produces<ErrorResponse>(400).Produces<ErrorResponse>(413).Produces<ErrorResponse>(415).Produces<ErrorResponse>(422).Produces<ErrorResponse>(503)
            .WithMetadata(new RequestSizeNote());
        v1.MapGet("/info", (DefenseModels m, ServeOptions o) => Results.Json(new InfoResponse(SettingsInfo.Of(m), m.ClassNames, o.MaxBatch,
                o.MaxWait.TotalMilliseconds, o.QueueCapacity, o.MaxUploadBytes)))
            .WithName("info").WithSummary("The models, settings, classes and limits").Produces<InfoResponse>();
        app.MapGet("/healthz", Health).WithTags("service").WithName("health")
            .WithSummary("200 when the models are loaded and requests are accepted, 503 while stopping")
            .Produces<HealthResponse>().Produces<HealthResponse>(503);
    }

    /// <summary>Marks the image endpoints for the OpenAPI transformer, which describes their request bodies. (No
    /// <c>Accepts</c> metadata: routing would then refuse other content types with a bare 415 before the endpoint could
    /// say what it accepts.)</summary>
    internal sealed class RequestSizeNote;

    private static IResult Health(DefenseModels m, BatchQueue queue, IHostApplicationLifetime life)
    {
        bool stopping = queue.Closed || life.ApplicationStopping.IsCancellationRequested;
        var body = new HealthResponse(stopping ? "stopping" : "ok", true, Path.GetFileName(m.ClassifierInfo.Path), Path.GetFileName(m.ScoreInfo.Path),
            queue.Count, queue.Capacity);
        return Results.Json(body, statusCode: stopping ? 503 : 200);
    }

    private static async Task<IResult> Classify(HttpContext ctx, DefenseModels m, ServeOptions o, BatchQueue queue, BatchWorker worker, ServeMetrics metrics)
    {
        long start = Stopwatch.GetTimestamp();
        var image = await ImageRequestReader.ReadAsync(ctx.Request, m, o.MaxUploadBytes, ctx.RequestAborted);
        var item = new WorkItem(WorkKind.Classify, image.Pixels, image.Seed ?? NewSeed(), aborted: ctx.RequestAborted);
        if (Admit(ctx, item, queue, worker, metrics) is { } refused) return refused;
        var result = await item.Completion.Task;
        var c = result.Classify!;
        metrics.Latency.WithLabels("classify").Observe(Stopwatch.GetElapsedTime(start).TotalSeconds);
        return Results.Json(new ClassifyResponse(c.Label, m.ClassNames[c.Label], c.Probabilities, m.ClassNames, c.Votes, c.Steps, item.Seed,
            SettingsInfo.Of(m), result.Batch));
    }

    private static async Task<IResult> Purify(HttpContext ctx, DefenseModels m, ServeOptions o, BatchQueue queue, BatchWorker worker, ServeMetrics metrics)
    {
        long start = Stopwatch.GetTimestamp();
        bool trajectory = ctx.Request.Query["trajectory"].ToString() switch
        {
            "" or "false" or "0" => false,
            "true" or "1" => true,
            var v => throw new BadInputException(400, $"query parameter 'trajectory': expected true or false, got '{(v.Length > 20 ? v[..20] + "…" : v)}'"),
        };
        var image = await ImageRequestReader.ReadAsync(ctx.Request, m, o.MaxUploadBytes, ctx.RequestAborted);
        var item = new WorkItem(WorkKind.Purify, image.Pixels, image.Seed ?? NewSeed(), trajectory, ctx.RequestAborted);
        if (Admit(ctx, item, queue, worker, metrics) is { } refused) return refused;
        var result = await item.Completion.Task;
        var p = result.Purify!;
        metrics.Latency.WithLabels("purify").Observe(Stopwatch.GetElapsedTime(start).TotalSeconds);
        if (trajectory)
            return Results.Json(new PurifyResponse(item.Seed, p.StepsTaken, p.Purified, p.Trajectory!, SettingsInfo.Of(m), result.Batch));
        ctx.Response.Headers["X-Adp-Seed"] = item.Seed.ToString();
        ctx.Response.Headers["X-Adp-Steps-Taken"] = p.StepsTaken.ToString();
        return Results.Bytes(p.Purified, "image/png");
    }

    private static long NewSeed() => Random.Shared.NextInt64(0, ImageRequestReader.MaxSeed + 1);

    /// <summary>Queues the image, or answers 503 with Retry-After when the queue is full or the service is stopping.</summary>
    private static IResult? Admit(HttpContext ctx, WorkItem item, BatchQueue queue, BatchWorker worker, ServeMetrics metrics)
    {
        var admission = queue.TryEnqueue(item);
        metrics.QueueLength.Set(queue.Count);
        if (admission == BatchQueue.Admission.Queued) return null;
        metrics.Rejected.Inc();
        int retry = worker.RetryAfterSeconds();
        ctx.Response.Headers.RetryAfter = retry.ToString();
        string message = admission == BatchQueue.Admission.Full
            ? $"the queue is full ({queue.Capacity} images waiting); retry after {retry} s"
            : "the service is shutting down; retry on another instance";
        return Results.Json(new ErrorResponse(message, 503), statusCode: 503);
    }
}
