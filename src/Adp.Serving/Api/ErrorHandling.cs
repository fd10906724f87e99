using System.Text.Json;
using Adp.Serving.Input;
using Adp.Serving.Monitoring;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Adp.Serving.Api;

/// <summary>Every refusal and failure as one line of JSON, <c>{"error": "…", "status": N}</c>; the service goes on
/// serving.</summary>
public static class ErrorHandling
{
    public static async Task Write(HttpContext ctx, int status, string message)
    {
        if (ctx.Response.HasStarted) return;
        ctx.Response.Clear();
        ctx.Response.StatusCode = status;
        var json = ctx.RequestServices.GetRequiredService<IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions>>().Value.SerializerOptions;
        ctx.Response.ContentType = "application/json; charset=utf-8";
        await ctx.Response.WriteAsync(JsonSerializer.Serialize(new ErrorResponse(BadInputException.OneLine(message), status), json) + "\n");
    }

    public static void UseOneLineErrors(this WebApplication app)
    {
        var metrics = app.Services.GetRequiredService<ServeMetrics>();
        var log = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Adp.Serving");
        app.Use(async (ctx, next) =>
        {
            try
            {
                await next(ctx);
            }
            catch (BadInputException e)
            {
                metrics.BadInput.WithLabels(e.Status.ToString()).Inc();
                await Write(ctx, e.Status, e.Message);
            }
            catch (BadHttpRequestException e)   // Kestrel's own limits (body size, malformed requests)
            {
                metrics.BadInput.WithLabels(e.StatusCode.ToString()).Inc();
                await Write(ctx, e.StatusCode, e.Message);
            }
            catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested)
            {
                // The client went away; nobody to answer.
            }
            catch (Exception e)
            {
                log.LogError(e, "{Method} {Path} failed", ctx.Request.Method, ctx.Request.Path);
                await Write(ctx, 500, $"internal error: {e.GetType().Name}: {e.Message}");
            }
        });
        // 404, 405 and the like, which have no body of their own.
        app.UseStatusCodePages(async sc =>
        {
            var ctx = sc.HttpContext;
            string message = ctx.Response.StatusCode switch
            {
                404 => $"no such endpoint: {ctx.Request.Path}; see /openapi/v1.json or /scalar",
                405 => $"{ctx.Request.Method} is not allowed on {ctx.Request.Path}",
                var s => $"HTTP {s}",
            };
            await Write(ctx, ctx.Response.StatusCode, message);
        });
    }
}
