using System.Text.Encodings.Web;
using Adp.Serving.Api;
using Adp.Serving.Batching;
using Adp.Serving.Inference;
using Adp.Serving.Monitoring;
using Adp.Serving.Web;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.OpenApi;
using Prometheus;
using Scalar.AspNetCore;

namespace Adp.Serving.Hosting;

/// <summary>
/// Builds the service: Kestrel on <see cref="ServeOptions.Urls"/>, the batch worker over the loaded
/// <see cref="DefenseModels"/>, the API, /metrics, the OpenAPI document (/openapi/v1.json) with its reference page
/// (/scalar), and the web page (/). Ctrl-C / SIGTERM stop accepting connections, answer the requests in flight
/// (up to <see cref="ServeOptions.ShutdownTimeout"/>), then stop the worker once the queue is empty.
/// </summary>
public static class ServeHost
{
    public static WebApplication Build(DefenseModels models, ServeOptions options, Action<WebApplicationBuilder>? configure = null)
    {
        options.Validate();
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            ApplicationName = "adp",
            ContentRootPath = AppContext.BaseDirectory,
            Args = ["--hostBuilder:reloadConfigOnChange=false"],
        });
        builder.WebHost.UseUrls([.. options.Urls]);
        builder.WebHost.ConfigureKestrel(k =>
        {
            // The endpoints refuse bodies over the limit with a JSON 413; Kestrel's hard stop sits above it
            // (multipart framing), for clients that never stop sending.
            k.Limits.MaxRequestBodySize = options.MaxUploadBytes + 64 * 1024;
            k.AddServerHeader = false;
        });
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = options.ShutdownTimeout);
        builder.Logging.ClearProviders();
        if (options.Logging)
        {
            builder.Logging.AddSimpleConsole(c => { c.SingleLine = true; c.TimestampFormat = "HH:mm:ss "; });
            builder.Logging.SetMinimumLevel(LogLevel.Information);
            builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        }
        builder.Services.ConfigureHttpJsonOptions(o => o.SerializerOptions.Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping);
        builder.Services.AddSingleton(models);
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton(new ServeMetrics());
        builder.Services.AddSingleton(new BatchQueue(options.QueueCapacity));
        builder.Services.AddSingleton<BatchWorker>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<BatchWorker>());
        builder.Services.AddOpenApi(o =>
        {
            o.AddDocumentTransformer((doc, _, _) =>
            {
                doc.Info.Title = "adp serve";
                doc.Info.Version = "v1";
                doc.Info.Description = "Adversarial purification with a score-based generative model (ADP) in front of a classifier: " +
                                       $"{models.ClassifierInfo.Dataset}, {models.ShapeText} images, {models.Purifier.Describe()}, S = {models.Runs}.";
                return Task.CompletedTask;
            });
            o.AddOperationTransformer(OpenApiImageBodies.Transform);
        });
        configure?.Invoke(builder);

        var app = builder.Build();
        var metrics = app.Services.GetRequiredService<ServeMetrics>();
        app.UseHttpMetrics(o => o.SetMetricFactory(metrics.Factory));
        app.UseOneLineErrors();
        app.MapAdpApi();
        app.MapMetrics("/metrics", metrics.Registry);
        app.MapOpenApi();
        app.MapScalarApiReference(o => o.WithTitle("adp serve — API reference"));
        app.MapWebPage();
        return app;
    }
}
